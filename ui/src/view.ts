/** A view draws into its container from the path's parameters; `onLeave` registers cleanup (charts, timers). */
export type View = (container: HTMLElement, args: string[], onLeave: (fn: () => void) => void) => Promise<void> | void;
