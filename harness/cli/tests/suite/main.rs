//! The edw conformance suite's integration tests, one binary with a module per area (one link
//! instead of thirty): the `edw` binary through its command line, the engine against real
//! Azurite and the twin, reports read by third-party readers, the workflows, the README.

mod support;

mod aks_lifecycle;
mod api_faults;
mod arm;
mod bad_input;
mod chaos;
mod chaos_twin;
mod check_config;
mod cli;
mod config;
mod doctor;
mod exit_codes;
mod gate;
mod history;
mod in_cluster_load;
mod kube_target;
mod kubectl_walk;
mod ownership;
mod queue_partitions;
mod readme_commands;
mod readme_scenario;
mod reports;
mod run_cli;
mod scenario;
mod side_by_side;
mod signin;
mod storage;
mod storage_firewall;
mod sweep_cli;
mod twin_calibrate;
mod twin_scaled;
mod twin_serve;
mod twin_simulate;
mod workflows;
mod workload;
