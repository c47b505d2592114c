import { GoogleGenAI } from '@google/genai';

/** One generateContent call through @google/genai, the SDK the Onceflow worker uses, against the same offline server. */
export function createBareActivities(geminiUrl: string) {
  const ai = new GoogleGenAI({ apiKey: 'offline-model-server', httpOptions: { baseUrl: geminiUrl } });
  return {
    async bareGenerate(prompt: string): Promise<string> {
      const response = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: prompt });
      return response.text ?? '';
    },
  };
}

export type BareActivities = ReturnType<typeof createBareActivities>;
