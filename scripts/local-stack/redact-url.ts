/** Hides the password in a connection URL (postgres://, redis://) so it can be printed. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*):[^@/]*@/, "$1:***@");
}
