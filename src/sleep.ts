/** Resolves after ms milliseconds (Worker code; Node scripts use setTimeout from node:timers/promises). */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
