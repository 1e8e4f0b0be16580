/**
 * TensorFlow.js with the WebAssembly backend, set explicitly (tfjs-node cannot be installed everywhere we
 * run; the wasm backend is ~10× faster than the pure-JS cpu backend). In Node the .wasm binaries are read
 * from the installed @tensorflow/tfjs-backend-wasm package's dist directory (`setWasmPaths`), so nothing is
 * fetched from a CDN. Falls back to the `cpu` backend, and says so, if wasm cannot start.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { silentLogger, type Logger } from '@wattsplit/wire';

let ready: Promise<string> | undefined;

/** Directory holding tfjs-backend-wasm's .wasm files (its package dist dir), with a trailing slash. */
export function wasmDir(): string {
  const require = createRequire(import.meta.url);
  return `${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`;
}

/** Initialises tfjs once (wasm backend, cpu fallback) and returns the backend name. */
export function initTf(logger: Logger = silentLogger): Promise<string> {
  ready ??= (async () => {
    try {
      setWasmPaths(wasmDir());
      if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
      await tf.ready();
    } catch (e) {
      logger.warn({ err: (e as Error).message }, 'tfjs wasm backend unavailable; using the cpu backend');
      await tf.setBackend('cpu');
      await tf.ready();
    }
    return tf.getBackend();
  })();
  return ready;
}

export { tf };
