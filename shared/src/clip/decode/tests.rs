use super::*;

#[test]
fn composite_matches_pillow_corners() {
    assert_eq!(composite_on_white(10, 255), 10);
    assert_eq!(composite_on_white(10, 0), 255);
    assert_eq!(composite_on_white(0, 128), 127);
}

#[test]
fn sniff_names_unsupported_formats() {
    let avif = b"\0\0\0\x1cftypavif\0\0\0\0";
    assert!(matches!(sniff(avif), Err(Error::UnsupportedFormat(f)) if f == "AVIF"));
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0";
    assert!(matches!(sniff(heic), Err(Error::UnsupportedFormat(f)) if f == "HEIC"));
    assert!(matches!(sniff(b"%PDF-1.7\n"), Err(Error::UnsupportedFormat(f)) if f == "PDF"));
    let svg = b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>";
    assert!(matches!(sniff(svg), Err(Error::UnsupportedFormat(f)) if f == "SVG"));
    assert!(matches!(sniff(b"hello world\n"), Err(Error::NotAnImage(_))));
    assert!(matches!(sniff(b""), Err(Error::EmptyImage)));
}
