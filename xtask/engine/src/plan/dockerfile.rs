//! What a rendered Dockerfile needs: its base images and whether it runs commands.

/// The images a Dockerfile builds on: each `FROM`, without `scratch`, earlier stages and
/// references that need build arguments to resolve.
pub(crate) fn from_images(dockerfile: &str) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for line in dockerfile.lines() {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let mut words = words.skip_while(|w| w.starts_with("--"));
        let Some(image) = words.next() else { continue };
        let is_stage = stages.contains(&image.to_ascii_lowercase());
        let known = !image.contains('$') && !image.eq_ignore_ascii_case("scratch") && !is_stage;
        if known && !images.iter().any(|i| i == image) {
            images.push(image.to_owned());
        }
        if let (Some(as_word), Some(stage)) = (words.next(), words.next()) {
            if as_word.eq_ignore_ascii_case("AS") {
                stages.push(stage.to_ascii_lowercase());
            }
        }
    }
    images
}

/// The image the final stage of a Dockerfile starts from, as written (`scratch`, `alpine`,
/// a stage name, `${BASE}`).
pub(crate) fn final_base(dockerfile: &str) -> Option<String> {
    dockerfile
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.next().filter(|w| w.eq_ignore_ascii_case("FROM"))?;
            words.find(|w| !w.starts_with("--")).map(str::to_owned)
        })
        .next_back()
}

/// Whether a Dockerfile runs commands while building, which for a foreign platform needs
/// emulation.
pub(crate) fn has_run_steps(dockerfile: &str) -> bool {
    dockerfile.lines().any(|line| {
        line.trim_start()
            .get(..4)
            .is_some_and(|word| word.eq_ignore_ascii_case("RUN "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_stage_names_the_image_that_runs() {
        let dockerfile = "FROM --platform=$BUILDPLATFORM rust:1 AS build\nRUN x\nfrom --platform=linux/arm64 scratch\nCOPY --from=build /x /x\n";
        assert_eq!(final_base(dockerfile).as_deref(), Some("scratch"));
        assert_eq!(
            final_base("FROM alpine\nFROM debian:12 AS run\n").as_deref(),
            Some("debian:12")
        );
        assert_eq!(final_base("# no stage\n"), None);
    }

    #[test]
    fn finds_the_base_images_of_a_dockerfile() {
        let dockerfile = "FROM --platform=$BUILDPLATFORM rust:1 AS build\nRUN x\nfrom build as test\nFROM alpine:3.20\nFROM test\nFROM scratch\nFROM ${BASE}\nFROM alpine:3.20\n";
        assert_eq!(from_images(dockerfile), ["rust:1", "alpine:3.20"]);
        assert!(from_images("FROM scratch\nCOPY a /a\n").is_empty());
    }

    #[test]
    fn run_steps_are_recognised() {
        assert!(has_run_steps("FROM x\n  run apk add ca-certificates\n"));
        assert!(!has_run_steps("FROM x\nCOPY run /run\n# RUN nothing\n"));
    }
}
