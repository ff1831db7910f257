import { stopTestStack } from "./stack.ts";

export default function setup() {
  return () => stopTestStack();
}
