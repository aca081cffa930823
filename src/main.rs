#[global_allocator]
static GLOBAL: flow_alloc::MiMalloc = flow_alloc::MiMalloc;

fn main() -> std::process::ExitCode {
    flow_alloc::return_freed_memory_sooner();
    flow::main()
}
