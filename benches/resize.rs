//! Resize figures for BENCHMARKS.md: dbxport's `prepare` (resize to 1600 px at quality 85)
//! beside `vipsthumbnail` and ImageMagick's `convert` on the same large photos, in the same run.
//!
//! - whole process, one photo per process: wall time and peak RSS (`wait4` rusage) of
//!   `vipsthumbnail IN -s 1600x1600 -o OUT[Q=85]`, `convert IN -auto-orient -resize 1600x1600
//!   -quality 85 OUT` and this binary in its worker mode (`--prepare OUT IN…`, which calls
//!   `dbxport::prepare::prepare`); median over the runs, rounds interleaved so the VM's drift
//!   hits every tool alike;
//! - whole process, all photos in one process (vipsthumbnail and dbxport take several files;
//!   vips runs its own thread pool, dbxport prepares one photo per core at a time, as the
//!   daemon does): median wall time, divided by the number of photos for the per-photo time;
//! - in process: `prepare` alone, without process start-up;
//! - quality: SSIM (luma, 8x8 windows) of each output against a reference made by decoding the
//!   source fully, turning it upright and resizing it with `image`'s exact f32 Lanczos3 to the
//!   same size, plus the output's size in bytes.
//!
//! Run: `benches/resize.sh` (installs the tools, then `cargo bench --bench resize`).
//! `BENCH_PHOTOS` (default `../shared/photos/large`) and `BENCH_RUNS` (default 5) override.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dbxport::prepare::{Mode, PrepareOptions, prepare};

static MAX: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| {
    std::env::var("BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1600)
});
const QUALITY: u8 = 85;
const CONVERT: &str = "/usr/bin/convert";

fn options() -> PrepareOptions {
    PrepareOptions {
        mode: Mode::Resize {
            max_dimension: *MAX,
            jpeg_quality: QUALITY,
        },
        strip_location: false,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--prepare") {
        worker(&args[1..]);
        return;
    }
    driver();
}

/// Worker mode: prepare each file into the output directory, as the daemon does: on as many
/// threads as there are cores (the daemon bounds its blocking-pool image work the same way).
fn worker(args: &[String]) {
    let out = Path::new(&args[0]);
    let files = &args[1..];
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    if let Err(e) = prepare(Path::new(file), &options(), out, i as u64 + 1) {
                        eprintln!("{e}");
                        std::process::exit(1);
                    }
                }
            });
        }
    });
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Dbxport,
    Vips,
    Convert,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Dbxport => "dbxport",
            Tool::Vips => "vipsthumbnail",
            Tool::Convert => "convert",
        }
    }

    /// The command that resizes `inputs` into `out` (a directory); `None` if the tool cannot
    /// take several files at once.
    fn command(self, inputs: &[&Path], out: &Path) -> Option<Command> {
        match self {
            Tool::Dbxport => {
                let mut c = Command::new(std::env::current_exe().unwrap());
                c.arg("--prepare").arg(out).args(inputs);
                Some(c)
            }
            Tool::Vips => {
                let mut c = Command::new("vipsthumbnail");
                c.args(inputs)
                    .arg("-s")
                    .arg(format!("{0}x{0}", *MAX))
                    .arg("-o")
                    .arg(format!("{}/%s.jpg[Q={QUALITY}]", out.display()));
                Some(c)
            }
            Tool::Convert if inputs.len() == 1 => {
                let mut c = Command::new(CONVERT);
                let stem = inputs[0].file_stem().unwrap().to_string_lossy().to_string();
                c.arg(inputs[0])
                    .args(["-auto-orient", "-resize"])
                    .arg(format!("{0}x{0}", *MAX))
                    .args(["-quality", &QUALITY.to_string()])
                    .arg(out.join(format!("{stem}.jpg")));
                Some(c)
            }
            Tool::Convert => None,
        }
    }

    /// Where the tool wrote the output for `input` inside `out`.
    fn output(self, input: &Path, out: &Path) -> PathBuf {
        let name = input.file_name().unwrap().to_string_lossy().to_string();
        let stem = input.file_stem().unwrap().to_string_lossy().to_string();
        match self {
            Tool::Dbxport => std::fs::read_dir(out)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().ends_with(&format!("-{name}")))
                .unwrap(),
            _ => out.join(format!("{stem}.jpg")),
        }
    }
}

/// Runs a command to completion; wall time and peak RSS (KiB) of the process.
// The child is reaped by `wait4`, which (unlike `Child::wait`) also reports its rusage.
#[allow(clippy::zombie_processes)]
fn measure(mut cmd: Command) -> (Duration, u64) {
    let started = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the tool");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, filled in by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting on our own child; `child` is never waited on by std afterwards.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    assert_eq!(rc, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    (elapsed, usage.ru_maxrss as u64)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn main_photos() -> Vec<PathBuf> {
    let dir = std::env::var_os("BENCH_PHOTOS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/photos/large"),
        PathBuf::from,
    );
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    photos.sort();
    assert!(!photos.is_empty(), "no photos in {}", dir.display());
    photos
}

fn driver() {
    let photos = main_photos();
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let tools: Vec<Tool> = [Tool::Dbxport, Tool::Vips, Tool::Convert]
        .into_iter()
        .filter(|t| match t {
            Tool::Dbxport => true,
            Tool::Vips => Command::new("vipsthumbnail")
                .arg("--version")
                .output()
                .is_ok(),
            Tool::Convert => Path::new(CONVERT).exists(),
        })
        .collect();
    let work = tempfile::tempdir().unwrap();
    let out_dir = |tool: Tool, what: &str| {
        let d = work.path().join(format!("{}-{what}", tool.name()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    };

    // One photo per process, rounds interleaved.
    let mut single: Vec<Vec<Vec<Duration>>> = vec![vec![Vec::new(); photos.len()]; tools.len()];
    let mut single_rss = vec![vec![0u64; photos.len()]; tools.len()];
    let mut batch: Vec<Vec<Duration>> = vec![Vec::new(); tools.len()];
    let mut batch_rss = vec![0u64; tools.len()];
    for round in 0..runs {
        eprintln!("round {}/{runs}", round + 1);
        for (p, photo) in photos.iter().enumerate() {
            for (t, tool) in tools.iter().enumerate() {
                let out = out_dir(*tool, &format!("single{p}"));
                let (wall, rss) = measure(tool.command(&[photo], &out).unwrap());
                single[t][p].push(wall);
                single_rss[t][p] = single_rss[t][p].max(rss);
            }
        }
        let all: Vec<&Path> = photos.iter().map(PathBuf::as_path).collect();
        for (t, tool) in tools.iter().enumerate() {
            if let Some(cmd) = tool.command(&all, &out_dir(*tool, "batch")) {
                let (wall, rss) = measure(cmd);
                batch[t].push(wall);
                batch_rss[t] = batch_rss[t].max(rss);
            }
        }
    }

    // In process: prepare() alone.
    let mut in_process: Vec<Vec<Duration>> = vec![Vec::new(); photos.len()];
    let cache = out_dir(Tool::Dbxport, "in-process");
    for round in 0..runs {
        for (p, photo) in photos.iter().enumerate() {
            let started = Instant::now();
            let prepared = prepare(photo, &options(), &cache, (round * 100 + p) as u64).unwrap();
            in_process[p].push(started.elapsed());
            let _ = std::fs::remove_file(prepared.path);
        }
    }

    println!(
        "\nResize to {} px at quality {QUALITY}; {runs} runs; medians. \
         Time and peak RSS per photo, one process per photo:\n",
        *MAX
    );
    let mut header = "| photo | pixels | dbxport in process |".to_string();
    for tool in &tools {
        header.push_str(&format!(" {} ms | {} MiB |", tool.name(), tool.name()));
    }
    println!("{header}");
    println!("|{}", " --- |".repeat(3 + 2 * tools.len()));
    for (p, photo) in photos.iter().enumerate() {
        let (w, h) = image::image_dimensions(photo).unwrap_or((0, 0));
        let mut row = format!(
            "| {} | {w}x{h} | {} ms |",
            photo.file_name().unwrap().to_string_lossy(),
            ms(median(&mut in_process[p]))
        );
        for t in 0..tools.len() {
            row.push_str(&format!(
                " {} | {:.0} |",
                ms(median(&mut single[t][p])),
                single_rss[t][p] as f64 / 1024.0
            ));
        }
        println!("{row}");
    }
    let mut row = format!(
        "| sum | | {} ms |",
        ms((0..photos.len()).map(|p| median(&mut in_process[p])).sum())
    );
    for per_tool in single.iter_mut() {
        let sum: Duration = per_tool.iter_mut().map(|runs| median(runs)).sum();
        row.push_str(&format!(" {} | |", ms(sum)));
    }
    println!("{row}");

    println!(
        "\nAll {} photos in one process (convert takes one file per process):\n",
        photos.len()
    );
    println!("| tool | whole process ms | per photo ms | peak RSS MiB |");
    println!("| --- | --- | --- | --- |");
    for (t, tool) in tools.iter().enumerate() {
        if batch[t].is_empty() {
            continue;
        }
        let m = median(&mut batch[t]);
        println!(
            "| {} | {} | {} | {:.0} |",
            tool.name(),
            ms(m),
            ms(m / photos.len() as u32),
            batch_rss[t] as f64 / 1024.0
        );
    }

    println!(
        "\nQuality: SSIM against an exact Lanczos3 resize of the full decode (1 = identical), output size:\n"
    );
    let mut header = "| photo |".to_string();
    for tool in &tools {
        header.push_str(&format!(" {} SSIM | KiB |", tool.name()));
    }
    println!("{header}");
    println!("|{}", " --- |".repeat(1 + 2 * tools.len()));
    for (p, photo) in photos.iter().enumerate() {
        let outputs: Vec<PathBuf> = tools
            .iter()
            .map(|tool| {
                let dir = work.path().join(format!("{}-single{p}", tool.name()));
                tool.output(photo, &dir)
            })
            .collect();
        let first = image::open(&outputs[0]).unwrap().to_rgb8();
        let reference = reference(photo, first.width(), first.height());
        let mut row = format!("| {} |", photo.file_name().unwrap().to_string_lossy());
        for out in &outputs {
            let img = image::open(out).unwrap().to_rgb8();
            let kib = std::fs::metadata(out).unwrap().len() as f64 / 1024.0;
            let score = if img.dimensions() == reference.dimensions() {
                format!("{:.4}", ssim(&img, &reference))
            } else {
                format!(
                    "{:.4} ({}x{})",
                    ssim(
                        &resize_exact(&img, reference.width(), reference.height()),
                        &reference
                    ),
                    img.width(),
                    img.height()
                )
            };
            row.push_str(&format!(" {score} | {kib:.0} |"));
        }
        println!("{row}");
    }
}

/// The full decode, turned upright, resized with `image`'s f32 Lanczos3.
fn reference(photo: &Path, width: u32, height: u32) -> image::RgbImage {
    use image::ImageDecoder;
    let mut decoder = image::ImageReader::open(photo)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    let orientation = decoder.orientation().unwrap();
    let mut img = image::DynamicImage::from_decoder(decoder).unwrap();
    img.apply_orientation(orientation);
    resize_exact(&img.to_rgb8(), width, height)
}

fn resize_exact(img: &image::RgbImage, width: u32, height: u32) -> image::RgbImage {
    image::imageops::resize(img, width, height, image::imageops::FilterType::Lanczos3)
}

/// Mean SSIM of the luma over 8x8 windows, step 4.
fn ssim(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let luma = |img: &image::RgbImage| -> Vec<f64> {
        img.pixels()
            .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
            .collect()
    };
    let (w, h) = (a.width() as usize, a.height() as usize);
    let (la, lb) = (luma(a), luma(b));
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let (mut total, mut count) = (0.0, 0usize);
    for y in (0..h.saturating_sub(8)).step_by(4) {
        for x in (0..w.saturating_sub(8)).step_by(4) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for dy in 0..8 {
                for dx in 0..8 {
                    let i = (y + dy) * w + x + dx;
                    let (va, vb) = (la[i], lb[i]);
                    sa += va;
                    sb += vb;
                    saa += va * va;
                    sbb += vb * vb;
                    sab += va * vb;
                }
            }
            let n = 64.0;
            let (ma, mb) = (sa / n, sb / n);
            let (va, vb, cov) = (saa / n - ma * ma, sbb / n - mb * mb, sab / n - ma * mb);
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    total / count.max(1) as f64
}
