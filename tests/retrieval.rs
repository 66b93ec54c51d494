//! Text→image ranking on 200 fresh synthetic images (tools/gen_synthetic.py, seed 2026):
//! the Rust pipeline must put an image of the named colour and shape first at least as often
//! as the reference pipeline does on the same files, minus 2 points.

mod common;

use std::collections::BTreeMap;

use common::*;

/// `python tools/reference.py rank tests/fixtures/tiny-clip DIR DIR/queries.jsonl` on
/// `python tools/gen_synthetic.py DIR --count 200 --seed 2026`, queries "a photo of a {colour}
/// {shape}" for the 48 classes present: R@1 = 1.0 (48/48), recall_frac@5 = 0.984375.
const REFERENCE_R_AT_1: f64 = 1.0;
const REFERENCE_RECALL_FRAC_AT_5: f64 = 0.984375;
const ALLOWED_DROP: f64 = 0.02;

#[test]
fn text_to_image_ranking_is_as_good_as_the_reference() {
    let (r1, rf5) = ranking(&tiny_clip(), "retrieval");
    assert!(
        r1 >= REFERENCE_R_AT_1 - ALLOWED_DROP,
        "R@1 {r1} below the reference {REFERENCE_R_AT_1}"
    );
    assert!(rf5 >= REFERENCE_RECALL_FRAC_AT_5 - ALLOWED_DROP, "recall_frac@5 {rf5}");
}

/// The int8 copy (tools/quantize_model.py) ranks as well as fp32, within 0.02, on the same
/// fresh images; it is named apart from the fp32 model, and its embeddings stay close to fp32's.
#[test]
fn the_int8_model_ranks_within_two_points_of_fp32() {
    let int8 = clipsearch::clip::Clip::load(
        &clipsearch::config::ClipSettings {
            model_dir: Some(fixtures().join("tiny-clip-int8")),
            ..settings()
        },
        clipsearch::clip::Towers::BOTH,
    )
    .expect("tiny-clip-int8 loads");
    assert_eq!(int8.name(), "tiny-clip-int8");
    let fp32 = tiny_clip();
    let (r1_fp32, rf5_fp32) = ranking(&fp32, "retrieval-fp32");
    let (r1, rf5) = ranking(&int8, "retrieval-int8");
    assert!(r1 >= r1_fp32 - ALLOWED_DROP, "int8 R@1 {r1} vs fp32 {r1_fp32}");
    assert!(
        rf5 >= rf5_fp32 - ALLOWED_DROP,
        "int8 recall_frac@5 {rf5} vs fp32 {rf5_fp32}"
    );
    let text = |clip: &clipsearch::clip::Clip| clip.text().unwrap().embed("a photo of a blue star").unwrap();
    let cos = cosine(&text(&int8), &text(&fp32));
    assert!(cos > 0.99, "text cosine int8 vs fp32 {cos}");
}

/// R@1 and recall_frac@5 of the 48 class captions over 200 fresh synthetic images.
fn ranking(clip: &clipsearch::clip::Clip, name: &str) -> (f64, f64) {
    let dir = tempdir(name);
    let dir_s = dir.to_str().unwrap();
    run_python(&["tools/gen_synthetic.py", dir_s, "--count", "200", "--seed", "2026"]);
    let labels = read_jsonl(&dir.join("labels.jsonl"));
    assert_eq!(labels.len(), 200);

    let mut by_class: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, row) in labels.iter().enumerate() {
        let caption = format!(
            "a photo of a {} {}",
            row["colour"].as_str().unwrap(),
            row["shape"].as_str().unwrap()
        );
        by_class.entry(caption).or_default().push(i);
    }
    let files: Vec<Vec<u8>> = labels
        .iter()
        .map(|r| std::fs::read(dir.join(r["file"].as_str().unwrap())).unwrap())
        .collect();
    let images: Vec<Vec<f32>> = clip
        .image()
        .unwrap()
        .embed_many(&files, |_, _| {})
        .into_iter()
        .map(|r| r.unwrap().embedding)
        .collect();
    let queries: Vec<&String> = by_class.keys().collect();
    let texts = clip.text().unwrap().embed_many(&queries);

    let (mut hits_at_1, mut recall_frac_5) = (0.0, 0.0);
    for (query, text) in queries.iter().zip(texts) {
        let text = text.unwrap();
        let mut scored: Vec<(f32, usize)> = images
            .iter()
            .enumerate()
            .map(|(i, v)| (v.iter().zip(&text).map(|(a, b)| a * b).sum(), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let relevant = &by_class[*query];
        let top5 = scored.iter().take(5).filter(|(_, i)| relevant.contains(i)).count();
        hits_at_1 += relevant.contains(&scored[0].1) as u32 as f64;
        recall_frac_5 += top5 as f64 / relevant.len().min(5) as f64;
        if !relevant.contains(&scored[0].1) {
            println!("{query}: first is {}", labels[scored[0].1]["caption"]);
        }
    }
    let n = queries.len() as f64;
    let (r1, rf5) = (hits_at_1 / n, recall_frac_5 / n);
    println!(
        "{}: R@1 {r1:.4} (reference {REFERENCE_R_AT_1}), recall_frac@5 {rf5:.4} (reference \
         {REFERENCE_RECALL_FRAC_AT_5})",
        clip.name()
    );
    assert_eq!(queries.len(), 48, "every class is present with seed 2026");
    std::fs::remove_dir_all(&dir).ok();
    (r1, rf5)
}
