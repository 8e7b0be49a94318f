declare module "*.css";
/** URL of the disk worker's script (build.mjs); absent where the sources run without a build. */
declare const __DISK_WORKER_URL__: string | undefined;
