//! Removable media under a watch: when the card is unmounted the watch says so (inotify is
//! silent about it; the daemon notices the mount change), and when it is back the watch
//! recovers and exports what the card brought.

use std::path::Path;

use crate::helper::*;

fn mount_card(at: &Path) -> Option<Tmpfs> {
    mount_tmpfs(at, "64m", "0777")
}

#[system_test]
async fn an_unmounted_card_is_reported_and_picked_up_again() {
    let mut config = small_config();
    config.watch.settle_ms = 300;
    let w = world(config).await;
    let mount_point = w.dir.path().join("card");
    std::fs::create_dir(&mount_point).unwrap();
    let Some(card) = mount_card(&mount_point) else {
        eprintln!("skipped: mounting a tmpfs needs privileges this run does not have");
        return;
    };
    let dcim = mount_point.join("DCIM");
    std::fs::create_dir(&dcim).unwrap();
    make_photos(&dcim, 2);
    let id = w
        .watches()
        .await
        .add_watch(
            dcim.to_string_lossy().into_owned(),
            "/Card".into(),
            dict(&[]),
        )
        .await
        .unwrap();
    let uploader = w.uploader().await;
    wait_for("the card's two photos", || async {
        let jobs = jobs(&uploader, &[]).await;
        (jobs.len() == 2 && jobs.iter().all(|j| j.state == "done")).then_some(())
    })
    .await;

    drop(card);
    let (_, reason) = wait_for("the watch to report the card gone", || async {
        let view = w.watch_view(id).await;
        (view.state == "missing").then_some(((), view.reason))
    })
    .await;
    assert!(reason.contains("DCIM"), "{reason}");

    // The card comes back with the two photos it had and two new ones.
    let card = mount_card(&mount_point).expect("mounted before");
    std::fs::create_dir(&dcim).unwrap();
    let photos = make_photos(&dcim, 2);
    for (i, name) in ["new-1.jpg", "new-2.jpg"].iter().enumerate() {
        let mut bytes = std::fs::read(&photos[0]).unwrap();
        bytes.extend_from_slice(format!("distinct {i}").as_bytes());
        std::fs::write(dcim.join(name), bytes).unwrap();
    }
    wait_for("the watch to recover", || async {
        (w.watch_view(id).await.state == "active").then_some(())
    })
    .await;
    let done = wait_for("the new photos on the returned card", || async {
        let jobs = jobs(&uploader, &[]).await;
        let new_done = jobs
            .iter()
            .filter(|j| j.source.contains("new-") && j.state == "done")
            .count();
        (new_done == 2 && jobs.iter().all(|j| j.state == "done")).then_some(jobs)
    })
    .await;
    assert_jobs_verified(&w, &done);
    // The photos it already exported (same content back on the card) were not sent again:
    // four files' bytes in all. (Whether they are jobs again depends on the new mount's
    // device number; either way nothing travels twice.)
    let sent = uploads_started(&w);
    assert_eq!(sent, 4, "{done:#?}");
    let stored = w.stored_paths();
    assert!(
        stored.contains(&"/Card/new-1.jpg".to_string()),
        "{stored:?}"
    );
    assert!(
        stored.contains(&"/Card/new-2.jpg".to_string()),
        "{stored:?}"
    );
    drop(card);
}
