//! `licensewatch statement`: a month's statement from the state a `check` left, written as CSV and as a PDF that
//! another reader (pypdf) opens and reads back; bad arguments named.

use std::process::Command;

use crate::common::{against, sim};

/// The text of every page of `pdf`, read by pypdf in strict mode (a wrong cross-reference fails it).
fn pdf_text(pdf: &std::path::Path) -> String {
    let python = std::env::var("LICENSEWATCH_TEST_PYTHON").expect(
        "LICENSEWATCH_TEST_PYTHON is not set: run the tests with ./scripts/test.sh, which installs pypdf",
    );
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, pypdf\nr = pypdf.PdfReader(sys.argv[1], strict=True)\nprint(len(r.pages))\nfor p in r.pages: print(p.extract_text())",
        ])
        .arg(pdf)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "pypdf cannot read the PDF: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_months_statement_is_written_as_csv_and_a_pdf_another_reader_opens() {
    let sim = sim();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("licensewatch.toml"),
        "[prices]\ncurrency = \"EUR\"\n[prices.monthly]\nENTERPRISEPACK = 23.5\n",
    )
    .expect("policy");
    let check = against(&sim, dir.path())
        .args(["check", "--json"])
        .output()
        .expect("check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let (csv, pdf) = (dir.path().join("csv"), dir.path().join("november.pdf"));
    let out = against(&sim, dir.path())
        .args(["statement", "--month", "2026-11", "--json", "--csv"])
        .arg(&csv)
        .arg("--pdf")
        .arg(&pdf)
        .output()
        .expect("statement");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let st = &doc["statements"][0];
    assert_eq!(st["runs"], 1, "{doc}");
    let e3 = st["skus"]
        .as_array()
        .expect("skus")
        .iter()
        .find(|l| l["sku"] == "Office 365 E3")
        .expect("E3");
    let bought = e3["bought"].as_i64().expect("bought");
    assert_eq!(e3["monthly_cost"], serde_json::json!(23.5 * bought as f64));

    let skus = std::fs::read_to_string(csv.join("skus.csv")).expect("skus.csv");
    assert!(
        skus.lines()
            .any(|l| l.contains(",Office 365 E3,") && l.ends_with(",EUR")),
        "{skus}"
    );
    assert!(csv.join("changes.csv").exists());
    let text = pdf_text(&pdf);
    assert!(text.starts_with("1\n"), "one page: {text}");
    assert!(
        text.contains("Licence statement 2026-11") && text.contains("Office 365 E3"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Total: {:.2} EUR", 23.5 * bought as f64)),
        "{text}"
    );

    let wrong = |args: &[&str], names: &str| {
        let out = against(&sim, dir.path())
            .arg("statement")
            .args(args)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(names),
            "{args:?}: {err}"
        );
    };
    wrong(&["--month", "2026-13"], "--month");
    wrong(&["--month", "11/2026"], "--month");
    wrong(&["--tenant", "fabrikam.onmicrosoft.com"], "--tenant");
}
