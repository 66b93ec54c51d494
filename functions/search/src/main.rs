//! The search Lambda. Until its issue lands this binary only proves the workspace builds.
fn main() -> anyhow::Result<()> {
    anyhow::bail!("the search function is not implemented yet")
}
