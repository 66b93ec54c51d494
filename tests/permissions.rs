//! Least privilege, checked statically: each function's role in template.yaml grants exactly
//! the S3 and Secrets Manager calls its code paths make (tests/iam/check_permissions.py), and
//! the check fails when a permission is taken away or a call is added without one (shown on
//! mutated copies, so this test could fail).

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn check(template: &Path, root: &Path) -> Output {
    let repo = common::repo_root();
    Command::new(common::python())
        .arg(repo.join("tests/iam/check_permissions.py"))
        .arg("--template")
        .arg(template)
        .arg("--root")
        .arg(root)
        .arg("--manifest")
        .arg(repo.join("Cargo.toml"))
        .output()
        .expect("run the permission check (make setup makes .venv)")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A copy of the deployed sources (shared/src, functions/*/src) to mutate.
fn copy_sources(into: &Path) {
    let repo = common::repo_root();
    let mut dirs = vec!["shared/src".to_owned()];
    for f in std::fs::read_dir(repo.join("functions")).unwrap() {
        dirs.push(format!("functions/{}/src", f.unwrap().file_name().to_string_lossy()));
    }
    for dir in dirs {
        let status = Command::new("cp")
            .args(["-r", "--parents", &dir])
            .arg(into)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(status.success(), "copying {dir}");
    }
}

#[test]
fn each_role_grants_exactly_what_its_code_calls() {
    let repo = common::repo_root();
    let out = check(&repo.join("template.yaml"), &repo);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("every role grants exactly what its code paths call"));
}

#[test]
fn a_removed_permission_fails_the_check() {
    let repo = common::repo_root();
    let dir = tempdir("removed");
    let template = std::fs::read_to_string(repo.join("template.yaml")).unwrap();
    // The ingest role's s3:ListBucket on the image prefix (the 404-vs-403 check needs it).
    let statement = template
        .find("            - Sid: TellMissingImagesFromForbidden")
        .expect("the statement");
    let end = statement
        + template[statement..]
            .find("        # The model copy at cold start")
            .unwrap();
    let mutated = format!("{}{}", &template[..statement], &template[end..]);
    std::fs::write(dir.join("template.yaml"), mutated).unwrap();
    let out = check(&dir.join("template.yaml"), &repo);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("IngestFunction: the code calls s3:ListBucket"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_extra_permission_fails_the_check() {
    let repo = common::repo_root();
    let dir = tempdir("extra");
    let template = std::fs::read_to_string(repo.join("template.yaml")).unwrap();
    // Ingest may read images; let it also delete them.
    let mutated = template.replacen(
        "              Action: [s3:GetObject]\n",
        "              Action: [s3:GetObject, s3:DeleteObject]\n",
        1,
    );
    assert_ne!(mutated, template);
    std::fs::write(dir.join("template.yaml"), mutated).unwrap();
    let out = check(&dir.join("template.yaml"), &repo);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("grants s3:DeleteObject"), "{}", text(&out));
}

#[test]
fn a_new_call_without_its_permission_fails_the_check() {
    let repo = common::repo_root();
    let dir = tempdir("call");
    copy_sources(&dir);
    let sync = dir.join("shared/src/ingest/sync.rs");
    let mut source = std::fs::read_to_string(&sync).unwrap();
    source.push_str(
        "\nasync fn tag(client: &aws_sdk_s3::Client) {\n    let _ = client.put_object_tagging().send().await;\n}\n",
    );
    std::fs::write(&sync, source).unwrap();
    let out = check(&repo.join("template.yaml"), &dir);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("shared/src/ingest/sync.rs") && text(&out).contains("`put_object_tagging` in fn tag"),
        "{}",
        text(&out)
    );
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("clipsearch-permissions-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
