//! Benchmark harness for shmcast (cross-process benchmarks come with the
//! bench issue; the in-process demo lives in `shm/examples`).
