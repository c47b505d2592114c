/** Every workflow the worker registers, by explicit name. */
export { generateContentWorkflow } from './generate-content.workflow';
export { generateReportWorkflow } from './generate-report.workflow';
export { maintenanceWorkflow } from './maintenance.workflow';
export { pruneOutboxWorkflow } from './prune-outbox.workflow';
export { scheduledSlotWorkflow } from './scheduled-slot.workflow';
