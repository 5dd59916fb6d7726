//! Engine selection from the environment. One test per binary: env vars are process-wide.

use mixnet_engine::{EngineKind, EngineSettings};

#[test]
fn environment_selects_engine_and_pool_size() {
    std::env::remove_var("MXNET_ENGINE_TYPE");
    std::env::remove_var("MXNET_CPU_WORKER_NTHREADS");
    std::env::remove_var("MIXNET_ENGINE_TYPE");
    std::env::remove_var("MIXNET_CPU_WORKER_NTHREADS");
    assert_eq!(EngineSettings::from_env(), EngineSettings { kind: EngineKind::Threaded, workers: 1 });

    std::env::set_var("MIXNET_ENGINE_TYPE", "NaiveEngine");
    assert_eq!(EngineSettings::from_env().kind, EngineKind::Naive);
    assert_eq!(EngineSettings::from_env().build().kind(), EngineKind::Naive);

    // The MXNet spelling is honoured when the mixnet one is unset.
    std::env::remove_var("MIXNET_ENGINE_TYPE");
    std::env::set_var("MXNET_ENGINE_TYPE", "NaiveEngine");
    assert_eq!(EngineSettings::from_env().kind, EngineKind::Naive);
    std::env::set_var("MIXNET_ENGINE_TYPE", "ThreadedEnginePerDevice");
    assert_eq!(EngineSettings::from_env().kind, EngineKind::Threaded);

    std::env::set_var("MIXNET_CPU_WORKER_NTHREADS", "3");
    assert_eq!(EngineSettings::from_env().workers, 3);
    std::env::set_var("MIXNET_CPU_WORKER_NTHREADS", "zero");
    assert_eq!(EngineSettings::from_env().workers, 1, "bad values fall back to the default");
    std::env::set_var("MIXNET_ENGINE_TYPE", "TurboEngine");
    assert_eq!(EngineSettings::from_env().kind, EngineKind::Threaded, "unknown names fall back");
}
