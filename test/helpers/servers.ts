// The real servers live with the benchmarks, which start them too.
export * from '../../scripts/servers.js';
