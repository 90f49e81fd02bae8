//! Benchmarks (the engine issue fills this in).

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("benchmarks are not written yet")
}
