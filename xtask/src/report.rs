//! Output: progress goes to stderr; results (image refs, digests) and `--json` to stdout.

use serde::Serialize;

use crate::plan::Plan;
use crate::runner::Report;

/// Prints the results on stdout and the summary table on stderr.
pub fn print(report: &Report, json: bool) {
    eprintln!("{}", summary_table(report));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("the report serialises")
        );
        return;
    }
    for platform in &report.platforms {
        match &platform.digest {
            Some(digest) => println!("{}@{digest}", platform.image),
            None => println!("{}", platform.image),
        }
    }
    for list in &report.manifests {
        println!("{}@{}", list.list, list.digest);
    }
}

/// Prints every command of the plan on stdout, in order.
pub fn print_dry_run(plan: &Plan, json: bool) {
    let steps = plan.display_steps();
    if json {
        #[derive(Serialize)]
        struct DryRun<'a> {
            dry_run: bool,
            steps: &'a [String],
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&DryRun {
                dry_run: true,
                steps: &steps
            })
            .expect("the plan serialises")
        );
    } else {
        for step in steps {
            println!("{step}");
        }
    }
}

/// The end-of-run table: platform, image, id or digest, size, context bytes, seconds.
pub fn summary_table(report: &Report) -> String {
    let mut rows = vec![[
        "platform", "image", "image id", "digest", "size", "context", "seconds",
    ]
    .map(String::from)
    .to_vec()];
    for p in &report.platforms {
        rows.push(vec![
            p.platform.clone(),
            p.image.clone(),
            short_id(&p.id),
            p.digest.as_deref().map_or("-".to_owned(), short_id),
            human_bytes(p.size),
            human_bytes(p.context_bytes),
            format!("{:.1}", p.seconds),
        ]);
    }
    for list in &report.manifests {
        rows.push(vec![
            "(list)".into(),
            list.list.clone(),
            "-".into(),
            short_id(&list.digest),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut table = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
    }
    table.push_str(&format!(
        "{} platform(s) in {:.1}s",
        report.platforms.len(),
        report.seconds
    ));
    table
}

fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..=9_999 => format!("{bytes} B"),
        10_000..=9_999_999 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{ListResult, PlatformResult};

    #[test]
    fn table_has_a_row_per_platform_and_list() {
        let report = Report {
            package: "hello".into(),
            platforms: vec![PlatformResult {
                platform: "linux/arm64".into(),
                image: "hello:arm64v8-0.1.0".into(),
                tags: vec![],
                id: format!("sha256:{}", "1".repeat(64)),
                size: 412_000,
                context_bytes: 411_900,
                digest: None,
                seconds: 3.25,
            }],
            manifests: vec![ListResult {
                list: "r/hello:0.1.0".into(),
                digest: format!("sha256:{}", "2".repeat(64)),
            }],
            seconds: 4.0,
        };
        let table = summary_table(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "platform     image                image id             digest               size      context   seconds");
        assert_eq!(lines[1], "linux/arm64  hello:arm64v8-0.1.0  sha256:111111111111  -                    412.0 kB  411.9 kB  3.2");
        assert!(lines[2].starts_with(
            "(list)       r/hello:0.1.0        -                    sha256:222222222222"
        ));
        assert_eq!(lines[3], "1 platform(s) in 4.0s");
    }
}
