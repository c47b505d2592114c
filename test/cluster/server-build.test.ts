import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureTemporalServer, ensureTemporalUi, TEMPORAL_SERVER_VERSION, TEMPORAL_UI_VERSION } from '../../dev/temporal-cluster/build';
import { LocalStackError } from '../../dev/errors';

describe('building the Temporal server for the cluster mode', () => {
  it('says in one line that go is missing, and what to do, when no build is there and no go is on PATH', async () => {
    const toolsDir = await mkdtemp(path.join(tmpdir(), 'onceflow-no-go-'));
    try {
      const attempt = ensureTemporalServer({ toolsDir, env: { PATH: toolsDir } });
      await expect(attempt).rejects.toThrow(LocalStackError);
      await expect(attempt).rejects.toThrow(`builds the Temporal server ${TEMPORAL_SERVER_VERSION} from source, and there is no \`go\` on PATH`);
      await expect(attempt).rejects.toMatchObject({ hint: expect.stringContaining('install Go') });
    } finally {
      await rm(toolsDir, { recursive: true, force: true });
    }
  });

  it('reuses the build of this run without go, as a machine without go after the first build does', async () => {
    const root = path.resolve(__dirname, '../..');
    const tools = await ensureTemporalServer({ toolsDir: path.join(root, '.onceflow', 'tools'), env: { PATH: '' } });
    expect(tools.built).toBe(false);
    expect(tools.server).toMatch(new RegExp(`temporal-server/${TEMPORAL_SERVER_VERSION}/bin/server$`));
  });

  it('says the same for the Web UI server, naming its version', async () => {
    const toolsDir = await mkdtemp(path.join(tmpdir(), 'onceflow-no-go-'));
    try {
      const attempt = ensureTemporalUi({ toolsDir, env: { PATH: toolsDir } });
      await expect(attempt).rejects.toThrow(`builds the Temporal Web UI server ${TEMPORAL_UI_VERSION} from source, and there is no \`go\` on PATH`);
    } finally {
      await rm(toolsDir, { recursive: true, force: true });
    }
  });

  it('reuses the UI server build of this run without go', async () => {
    const root = path.resolve(__dirname, '../..');
    const ui = await ensureTemporalUi({ toolsDir: path.join(root, '.onceflow', 'tools'), env: { PATH: '' } });
    expect(ui.built).toBe(false);
    expect(ui.binary).toMatch(new RegExp(`temporal-ui-server/${TEMPORAL_UI_VERSION}/bin/server$`));
  });
});
