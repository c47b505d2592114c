// Keep test output readable: processes under test log at warn unless asked.
process.env.LOG_LEVEL ??= 'warn';
