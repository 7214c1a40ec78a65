//! Tests of `prepare` on the real photos in `tests/data/photos` (see its SOURCES.md): sizes,
//! orientation, metadata carried over, location removed, formats, damaged files.

use std::path::{Path, PathBuf};

use super::*;
use crate::dropbox::content_hash::content_hash;

fn photo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/photos")
        .join(name)
}

fn resize(max_dimension: u32, strip_location: bool) -> PrepareOptions {
    PrepareOptions {
        mode: Mode::Resize {
            max_dimension,
            jpeg_quality: 85,
        },
        strip_location,
    }
}

fn original(strip_location: bool) -> PrepareOptions {
    PrepareOptions {
        mode: Mode::Original,
        strip_location,
    }
}

struct Out {
    prepared: Prepared,
    bytes: Vec<u8>,
    _cache: tempfile::TempDir,
}

fn run(name: &str, options: &PrepareOptions) -> Out {
    let cache = tempfile::tempdir().unwrap();
    let prepared =
        prepare(&photo(name), options, cache.path(), 7).unwrap_or_else(|e| panic!("{name}: {e}"));
    let bytes = std::fs::read(&prepared.path).unwrap();
    assert_eq!(prepared.stamp.size, bytes.len() as u64);
    Out {
        prepared,
        bytes,
        _cache: cache,
    }
}

fn exif_of(bytes: &[u8]) -> Option<exif::Exif> {
    exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .ok()
}

fn field(e: &exif::Exif, tag: exif::Tag) -> Option<String> {
    e.get_field(tag, exif::In::PRIMARY)
        .map(|f| f.display_value().with_unit(e).to_string())
}

fn uint(e: &exif::Exif, tag: exif::Tag) -> Option<u32> {
    e.get_field(tag, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
}

fn has_gps(e: &exif::Exif) -> bool {
    e.fields()
        .any(|f| matches!(f.tag.context(), exif::Context::Gps))
}

fn size_of(bytes: &[u8]) -> (u32, u32) {
    let f = jpeg::parse(bytes).expect("a whole JPEG").frame;
    (f.width, f.height)
}

fn decoded(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

/// Mean absolute difference per channel, 0–255.
fn mean_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y) as u64)
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

/// The entropy-coded part of a JPEG: from the first SOS to the end.
fn scan_data(bytes: &[u8]) -> &[u8] {
    let sos = jpeg::parse(bytes)
        .unwrap()
        .layout
        .segments
        .iter()
        .find(|s| s.marker == 0xDA)
        .unwrap()
        .whole
        .start;
    &bytes[sos..]
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn landscape_and_portrait_are_fit_on_the_long_edge() {
    let out = run("IMG_20200608_111614.jpg", &resize(1600, false));
    assert!(out.prepared.temporary);
    assert!(out.prepared.path.starts_with(out._cache.path()));
    // A prepared copy is the user's photo (and may carry its location): only theirs to read.
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&out.prepared.path), 0o600);
    assert_eq!(
        out.prepared.path.file_name().unwrap(),
        "7-IMG_20200608_111614.jpg"
    );
    assert_eq!(size_of(&out.bytes), (1600, 1200));
    assert!(
        out.prepared.warnings.is_empty(),
        "{:?}",
        out.prepared.warnings
    );

    let out = run(
        "orientation/canon-sx530-crop-portrait.jpg",
        &resize(100, false),
    );
    assert_eq!(size_of(&out.bytes), (75, 100));
    // 2000x1072 → 1000x536 (536.0), and 333x… rounding is covered by resize::fit's tests.
    let out = run("xmp_test.jpg", &resize(1000, false));
    assert_eq!(size_of(&out.bytes), (1000, 536));
}

#[test]
fn every_orientation_comes_out_upright_without_a_tag() {
    // 256: a full decode; 100: decoded at 1/2 (DCT scaling) first.
    for (max, short) in [(256, 192), (100, 75)] {
        let reference = run("orientation/canon-sx530-crop-o1.jpg", &resize(max, false));
        let reference_px = decoded(&reference.bytes);
        assert_eq!(reference_px.dimensions(), (max, short));
        for o in 1..=8 {
            let name = format!("orientation/canon-sx530-crop-o{o}.jpg");
            let source_exif = exif_of(&std::fs::read(photo(&name)).unwrap()).unwrap();
            assert_eq!(uint(&source_exif, exif::Tag::Orientation), Some(o));
            let out = run(&name, &resize(max, false));
            assert_eq!(size_of(&out.bytes), (max, short), "o{o}");
            let e = exif_of(&out.bytes).expect("EXIF carried over");
            let tag = uint(&e, exif::Tag::Orientation);
            assert!(tag.is_none() || tag == Some(1), "o{o}: Orientation {tag:?}");
            // The source's EXIF said 4608x3456 (stale since a crop): now the output's size.
            assert_eq!(uint(&e, exif::Tag::PixelXDimension), Some(max), "o{o}");
            assert_eq!(uint(&e, exif::Tag::PixelYDimension), Some(short), "o{o}");
            let diff = mean_diff(&decoded(&out.bytes), &reference_px);
            assert!(
                diff < 2.0,
                "o{o} at {max}: mean difference {diff:.2} from o1"
            );
        }
        // A mirrored picture differs a lot: the comparison means something.
        let flipped = image::imageops::flip_horizontal(&reference_px);
        assert!(mean_diff(&reference_px, &flipped) > 10.0);
    }
}

#[test]
fn camera_model_date_icc_and_xmp_survive_with_new_dimensions() {
    let source = std::fs::read(photo("xmp_test.jpg")).unwrap();
    let source_exif = exif_of(&source).unwrap();
    let source_icc = jpeg::parse(&source)
        .unwrap()
        .layout
        .icc_profile(&source)
        .unwrap();
    let out = run("xmp_test.jpg", &resize(800, false));
    assert_eq!(size_of(&out.bytes), (800, 429));
    let e = exif_of(&out.bytes).unwrap();
    for tag in [
        exif::Tag::Make,
        exif::Tag::Model,
        exif::Tag::DateTimeOriginal,
        exif::Tag::ExposureTime,
        exif::Tag::LensModel,
    ] {
        assert!(field(&source_exif, tag).is_some(), "{tag} in the source");
        assert_eq!(field(&e, tag), field(&source_exif, tag), "{tag}");
    }
    assert_eq!(
        field(&e, exif::Tag::Model).unwrap(),
        "\"Canon EOS Rebel T6\""
    );
    // This Lightroom export states no pixel size in its EXIF, and none is invented.
    assert_eq!(uint(&source_exif, exif::Tag::PixelXDimension), None);
    assert_eq!(uint(&e, exif::Tag::PixelXDimension), None);
    assert!(
        e.fields().all(|f| f.ifd_num == exif::In::PRIMARY),
        "the stale thumbnail (IFD1) is dropped"
    );
    let out_layout = jpeg::parse(&out.bytes).unwrap().layout;
    let icc = out_layout
        .icc_profile(&out.bytes)
        .expect("ICC profile kept");
    assert_eq!(icc, source_icc);
    assert!(find(&icc, b"Adobe RGB (1998)") || find(&icc, b"A\0d\0o\0b\0e"));
    let xmp = &out.bytes[out_layout.xmp_range(&out.bytes).expect("XMP kept")];
    let source_xmp = &source[jpeg::parse(&source)
        .unwrap()
        .layout
        .xmp_range(&source)
        .unwrap()];
    assert_eq!(xmp, source_xmp);
}

#[test]
fn gps_is_kept_by_default_and_removed_with_strip_location() {
    let source = std::fs::read(photo("sample1.jpg")).unwrap();
    let source_exif = exif_of(&source).unwrap();
    assert!(has_gps(&source_exif));
    let lat = field(&source_exif, exif::Tag::GPSLatitude).unwrap();
    // The latitude's raw rationals, to check the bytes themselves are gone.
    let raw_lat: Vec<u8> = match &source_exif
        .get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
        .unwrap()
        .value
    {
        exif::Value::Rational(v) => v
            .iter()
            .flat_map(|r| {
                if source_exif.little_endian() {
                    [r.num.to_le_bytes(), r.denom.to_le_bytes()].concat()
                } else {
                    [r.num.to_be_bytes(), r.denom.to_be_bytes()].concat()
                }
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    assert!(find(&source, &raw_lat));

    let kept = run("sample1.jpg", &resize(200, false));
    let e = exif_of(&kept.bytes).unwrap();
    assert_eq!(
        field(&e, exif::Tag::GPSLatitude).as_deref(),
        Some(lat.as_str())
    );

    let stripped = run("sample1.jpg", &resize(200, true));
    assert_eq!(size_of(&stripped.bytes), (200, 150));
    let e = exif_of(&stripped.bytes).unwrap();
    assert!(!has_gps(&e), "GPS left in the resized photo");
    assert!(!find(&stripped.bytes, &raw_lat));
    assert_eq!(
        field(&e, exif::Tag::Model),
        field(&source_exif, exif::Tag::Model)
    );

    // The phone original: GPS, camera EXIF, 12 MP.
    let phone = std::fs::read(photo("IMG_20200608_111614.jpg")).unwrap();
    assert!(has_gps(&exif_of(&phone).unwrap()));
    let out = run("IMG_20200608_111614.jpg", &resize(1600, true));
    let e = exif_of(&out.bytes).unwrap();
    assert!(!has_gps(&e));
    assert!(field(&e, exif::Tag::Model).unwrap().contains("Mi A3"));
    assert_eq!(uint(&e, exif::Tag::PixelXDimension), Some(1600));
    assert_eq!(uint(&e, exif::Tag::PixelYDimension), Some(1200));
    assert!(field(&e, exif::Tag::DateTimeOriginal).is_some());
    assert!(
        e.fields().all(|f| f.ifd_num == exif::In::PRIMARY),
        "thumbnail dropped"
    );
}

#[test]
fn original_mode_leaves_the_bytes_alone_or_only_cuts_the_location() {
    let path = photo("sample1.jpg");
    let source = std::fs::read(&path).unwrap();
    let out = run("sample1.jpg", &original(false));
    assert_eq!(out.prepared.path, path);
    assert!(!out.prepared.temporary);
    assert_eq!(content_hash(&out.bytes), content_hash(&source));

    let out = run("sample1.jpg", &original(true));
    assert!(out.prepared.temporary);
    assert_eq!(out.prepared.path.file_name().unwrap(), "7-sample1.jpg");
    assert_eq!(out.bytes.len(), source.len(), "edited in place");
    assert_eq!(
        scan_data(&out.bytes),
        scan_data(&source),
        "pixels not re-encoded"
    );
    let e = exif_of(&out.bytes).unwrap();
    let source_exif = exif_of(&source).unwrap();
    assert!(!has_gps(&e));
    for f in source_exif.fields().filter(|f| {
        !matches!(f.tag.context(), exif::Context::Gps) && f.tag != exif::Tag::GPSInfoIFDPointer
    }) {
        assert_eq!(
            e.get_field(f.tag, f.ifd_num)
                .map(|g| format!("{:?}", g.value)),
            Some(format!("{:?}", f.value)),
            "{} changed",
            f.tag
        );
    }
    // The thumbnail stays: the pixels it shows did not change.
    assert!(e.fields().any(|f| f.ifd_num == exif::In::THUMBNAIL));

    // No location to remove: the original goes, untouched.
    let out = run("flower.jpg", &original(true));
    assert!(!out.prepared.temporary);
    assert_eq!(out.bytes, std::fs::read(photo("flower.jpg")).unwrap());
}

#[test]
fn a_small_photo_is_not_upscaled_but_sent_as_it_is() {
    let path = photo("flower.jpg");
    let out = run("flower.jpg", &resize(1600, false));
    assert_eq!(out.prepared.path, path);
    assert!(!out.prepared.temporary);
    assert!(out.prepared.warnings.is_empty());
    assert_eq!(out.bytes, std::fs::read(&path).unwrap());
    assert_eq!(size_of(&out.bytes), (480, 360));
    // Exactly at the limit is within it.
    let out = run("flower.jpg", &resize(480, false));
    assert!(!out.prepared.temporary);
    // With strip_location and GPS, a small JPEG is rewritten, not re-encoded.
    let source = std::fs::read(photo("sample1.jpg")).unwrap();
    let out = run("sample1.jpg", &resize(1600, true));
    assert!(out.prepared.temporary);
    assert_eq!(scan_data(&out.bytes), scan_data(&source));
    assert!(!has_gps(&exif_of(&out.bytes).unwrap()));
}

#[test]
fn the_png_becomes_name_jpg_with_its_metadata() {
    let options = resize(1600, false);
    assert_eq!(remote_name("flower-crop.png", &options), "flower-crop.jpg");
    let out = run("formats/flower-crop.png", &options);
    assert!(out.prepared.temporary);
    assert_eq!(out.prepared.path.file_name().unwrap(), "7-flower-crop.jpg");
    // Converted even though it is within the limit: never upscaled.
    assert_eq!(size_of(&out.bytes), (480, 320));
    let e = exif_of(&out.bytes).expect("EXIF from the PNG's text chunk");
    assert_eq!(field(&e, exif::Tag::Model).as_deref(), Some("\"Pixel 6\""));
    assert!(has_gps(&e));
    assert_eq!(uint(&e, exif::Tag::PixelXDimension), Some(480));
    let layout = jpeg::parse(&out.bytes).unwrap().layout;
    let icc = layout.icc_profile(&out.bytes).expect("ICC kept");
    assert!(find(&icc, b"GIMP built-in sRGB") || find(&icc, b"G\0I\0M\0P"));
    assert!(layout.xmp_range(&out.bytes).is_some());
    // Colours survive the trip: compare with the PNG's own pixels.
    let png = image::open(photo("formats/flower-crop.png"))
        .unwrap()
        .to_rgb8();
    let diff = mean_diff(&decoded(&out.bytes), &png);
    assert!(diff < 3.0, "mean difference {diff:.2}");

    let out = run("formats/flower-crop.png", &resize(240, true));
    assert_eq!(size_of(&out.bytes), (240, 160));
    assert!(!has_gps(&exif_of(&out.bytes).unwrap()));
}

#[test]
fn a_png_original_loses_only_its_location() {
    let source = std::fs::read(photo("formats/flower-crop.png")).unwrap();
    let out = run("formats/flower-crop.png", &original(true));
    assert!(out.prepared.temporary);
    assert_eq!(
        out.prepared.path.file_name().unwrap(),
        "7-flower-crop.png",
        "an original keeps its name"
    );
    let legacy = containers::png_legacy_exif(&out.bytes).unwrap();
    let e = exif::Reader::new().read_raw(legacy).unwrap();
    assert!(!has_gps(&e));
    assert_eq!(field(&e, exif::Tag::Model).as_deref(), Some("\"Pixel 6\""));
    let before = image::load_from_memory(&source).unwrap();
    let after = image::load_from_memory(&out.bytes).unwrap();
    assert_eq!(before.as_bytes(), after.as_bytes());
}

#[test]
fn webp_cmyk_and_progressive_jpegs_are_converted() {
    let out = run("yellow_rose.lossy.webp", &resize(200, false));
    assert_eq!(
        out.prepared.path.file_name().unwrap(),
        "7-yellow_rose.lossy.jpg"
    );
    // 400x301: the short edge 150.5 rounds to 151.
    assert_eq!(size_of(&out.bytes), (200, 151));

    // The same video frame as CMYK and as a progressive YCbCr JPEG.
    let cmyk = run("formats/video-001.cmyk.jpeg", &resize(100, false));
    let progressive = run("formats/video-001.progressive.jpeg", &resize(100, false));
    assert_eq!(size_of(&cmyk.bytes), (100, 69));
    assert_eq!(size_of(&progressive.bytes), (100, 69));
    // Go's test frames were converted with different colour maths (ImageMagick's own CMYK
    // conversion of this file differs from the YCbCr one by 13.6% MAE, and ours from
    // ImageMagick's by 1.9%), so: the same picture, not inverted, colours near.
    let (c, p) = (decoded(&cmyk.bytes), decoded(&progressive.bytes));
    let mut inverted = c.clone();
    image::imageops::invert(&mut inverted);
    let (diff, diff_inverted) = (mean_diff(&c, &p), mean_diff(&inverted, &p));
    assert!(
        diff < 45.0 && diff * 2.0 < diff_inverted,
        "{diff:.1} vs {diff_inverted:.1}"
    );
}

#[test]
fn heic_is_uploaded_as_the_original_with_a_warning() {
    let out = run("formats/pug-head.heic", &resize(1600, false));
    assert_eq!(out.prepared.path, photo("formats/pug-head.heic"));
    assert!(!out.prepared.temporary);
    assert_eq!(
        out.prepared.warnings,
        ["pug-head.heic: HEIC files cannot be resized here; uploading the original"]
    );
    assert_eq!(remote_name("pug.heic", &resize(1600, false)), "pug.heic");
    assert!(
        run("formats/pug-head.heic", &original(false))
            .prepared
            .warnings
            .is_empty()
    );

    let cache = tempfile::tempdir().unwrap();
    let err = prepare(
        &photo("formats/pug-head.heic"),
        &original(true),
        cache.path(),
        1,
    )
    .unwrap_err();
    assert!(matches!(err, SourceError::Unsupported { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("pug-head.heic: cannot remove the location from a HEIC file"),
        "{msg}"
    );
}

#[test]
fn truncated_jpegs_fail_naming_the_file() {
    let cache = tempfile::tempdir().unwrap();
    for name in [
        "broken/IMG_20200124_231153-truncated-in-exif.jpg",
        "broken/IMG_20200124_231153-truncated-in-scan.jpg",
    ] {
        let err = prepare(&photo(name), &resize(1600, false), cache.path(), 1).unwrap_err();
        assert!(
            matches!(err, SourceError::Corrupt { .. }),
            "{name}: {err:?}"
        );
        let msg = err.to_string();
        let file = Path::new(name).file_name().unwrap().to_str().unwrap();
        assert!(msg.contains(file), "{msg}");
        assert!(msg.contains("truncated or damaged"), "{msg}");
    }
    // A progressive file cut in the middle, which zune-jpeg's strict mode lets through.
    let data = std::fs::read(photo("Dragonfly_by_Bolly.jpg")).unwrap();
    let cut = cache.path().join("cut-progressive.jpg");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let err = prepare(&cut, &resize(1600, false), cache.path(), 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("cut-progressive.jpg: cannot read this photo"),
        "{err}"
    );
    // Nothing was left behind.
    let left: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["cut-progressive.jpg"]);
}

#[test]
fn images_too_large_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    // A real small JPEG whose frame header claims 30000x30000.
    let mut data = std::fs::read(photo("flower.jpg")).unwrap();
    let sof = jpeg::parse(&data)
        .unwrap()
        .layout
        .segments
        .iter()
        .find(|s| (0xC0..=0xC2).contains(&s.marker))
        .unwrap()
        .data
        .start;
    data[sof + 1..sof + 5].copy_from_slice(&[0x75, 0x30, 0x75, 0x30]);
    let huge = dir.path().join("huge.jpg");
    std::fs::write(&huge, &data).unwrap();
    let err = prepare(&huge, &resize(1600, false), dir.path(), 1).unwrap_err();
    assert!(matches!(err, SourceError::TooLarge { .. }), "{err:?}");
    assert!(
        err.to_string().contains("huge.jpg: image too large"),
        "{err}"
    );

    // A PNG header claiming 60000 x 60000.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&60000u32.to_be_bytes());
    ihdr.extend_from_slice(&60000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&containers::png_chunk(b"IHDR", &ihdr));
    png.extend_from_slice(&containers::png_chunk(b"IEND", &[]));
    let big = dir.path().join("big.png");
    std::fs::write(&big, &png).unwrap();
    let err = prepare(&big, &resize(1600, false), dir.path(), 1).unwrap_err();
    assert!(
        matches!(
            err,
            SourceError::TooLarge { .. } | SourceError::Corrupt { .. }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&big.display().to_string()),
        "{err}"
    );
}

#[test]
fn garbage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = [
        std::fs::read(photo("sample1.jpg")).unwrap(),
        std::fs::read(photo("formats/flower-crop.png")).unwrap(),
        std::fs::read(photo("yellow_rose.lossy.webp")).unwrap(),
    ];
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (i, seed) in seeds.iter().enumerate() {
        for round in 0..12 {
            let mut data = seed.clone();
            // Flip bytes in the headers (first 4 KiB), where the parsers live.
            for _ in 0..8 {
                let at = (next() as usize) % data.len().min(4096);
                data[at] = next() as u8;
            }
            let path = dir.path().join(format!("fuzz{i}-{round}.jpg"));
            std::fs::write(&path, &data).unwrap();
            for options in [resize(64, true), resize(64, false), original(true)] {
                let _ = prepare(&path, &options, dir.path(), 1000 + round);
            }
        }
    }
}

#[test]
fn discard_removes_the_jobs_files_only() {
    let cache = tempfile::tempdir().unwrap();
    let a = prepare(&photo("sample1.jpg"), &resize(100, false), cache.path(), 1).unwrap();
    let b = prepare(&photo("sample1.jpg"), &resize(100, false), cache.path(), 12).unwrap();
    assert!(a.path.exists() && b.path.exists());
    std::fs::write(cache.path().join("1-left.jpg.part"), b"x").unwrap();
    discard(cache.path(), 1);
    assert!(!a.path.exists());
    assert!(!cache.path().join("1-left.jpg.part").exists());
    assert!(b.path.exists());
    discard(cache.path(), 1);
    discard(&cache.path().join("missing"), 1);
}

#[test]
fn a_missing_source_is_named() {
    let cache = tempfile::tempdir().unwrap();
    let err = prepare(
        Path::new("/nonexistent/IMG_9.jpg"),
        &resize(100, false),
        cache.path(),
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("IMG_9.jpg: no such file"), "{err}");
}

#[test]
fn reduced_scale_decoding_keeps_twice_the_target_and_matches_the_full_decode() {
    assert_eq!(decode::dct_scale((4000, 3000), (1600, 1200)), None);
    assert_eq!(decode::dct_scale((8160, 6120), (1600, 1200)), Some(2));
    assert_eq!(decode::dct_scale((6028, 3391), (700, 394)), Some(4));
    assert_eq!(decode::dct_scale((4000, 3000), (200, 150)), Some(8));
    assert_eq!(decode::dct_scale((4000, 3000), (250, 187)), Some(8));
    assert_eq!(decode::dct_scale((4000, 3000), (251, 187)), Some(4));

    let data = std::fs::read(photo("orientation/canon-sx530-crop-o1.jpg")).unwrap();
    let parsed = jpeg::parse(&data).unwrap();
    // 512x384 → 100x75: decoded at 1/2 (256x192), twice the target or more.
    let scaled = decode::decode_jpeg(&data, &parsed, (100, 75)).unwrap();
    assert_eq!((scaled.width, scaled.height), (256, 192));
    // → 200x150: no room for a reduction.
    let full = decode::decode_jpeg(&data, &parsed, (200, 150)).unwrap();
    assert_eq!((full.width, full.height), (512, 384));
    let a = resize::resample(scaled, 100, 75).unwrap();
    let b = resize::resample(full, 100, 75).unwrap();
    let as_image = |p: Pixels| image::RgbImage::from_raw(p.width, p.height, p.data).unwrap();
    let diff = mean_diff(&as_image(a), &as_image(b));
    assert!(diff < 1.0, "mean difference {diff:.2}");
}

#[test]
fn iptc_is_carried_over() {
    let source = std::fs::read(photo("formats/iptc.jpg")).unwrap();
    let source_iptc = jpeg::parse(&source)
        .unwrap()
        .layout
        .iptc_segment(&source)
        .unwrap()
        .to_vec();
    let out = run("formats/iptc.jpg", &resize(320, false));
    assert_eq!(size_of(&out.bytes), (320, 240));
    let layout = jpeg::parse(&out.bytes).unwrap().layout;
    assert_eq!(layout.iptc_segment(&out.bytes), Some(&source_iptc[..]));
}

#[test]
fn a_tiff_is_converted_to_jpg() {
    let dir = tempfile::tempdir().unwrap();
    let tiff = dir.path().join("scan.tif");
    image::open(photo("formats/flower-crop.png"))
        .unwrap()
        .save_with_format(&tiff, image::ImageFormat::Tiff)
        .unwrap();
    let options = resize(200, false);
    assert_eq!(remote_name("scan.tif", &options), "scan.jpg");
    let prepared = prepare(&tiff, &options, dir.path(), 3).unwrap();
    assert_eq!(prepared.path.file_name().unwrap(), "3-scan.jpg");
    let bytes = std::fs::read(&prepared.path).unwrap();
    assert_eq!(size_of(&bytes), (200, 133));
    // A TIFF without GPS needs no rewrite as an original.
    let prepared = prepare(&tiff, &original(true), dir.path(), 4).unwrap();
    assert_eq!(prepared.path, tiff);
}
