//! TLS end to end: a client writes over HTTPS to the producer, which stores into Redis over
//! `rediss://` as an ACL user; a consumer reads over `rediss://` into a file. Certificates
//! are made for the test (a CA and a server certificate for 127.0.0.1); the redline
//! processes trust the CA through `SSL_CERT_FILE`, as they would a system CA bundle.

use std::{path::PathBuf, time::Duration};

use redline_testkit::{free_port, wait_until, ChildGuard, RedisServer};
use tempfile::TempDir;

use crate::support::{lines, redline, STREAM};

/// A CA and a certificate for `127.0.0.1` and `localhost` signed by it, as PEM files.
struct Pki {
    dir: TempDir,
    ca_pem: String,
}

impl Pki {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "redline test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Self {
            dir,
            ca_pem: ca.pem(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_and_rediss_carry_every_metric_exactly() {
    const REQUESTS: usize = 5;
    const LINES: usize = 200;
    let pki = Pki::new();
    let tls_port = free_port();
    let redis = RedisServer::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &pki.arg("cert.pem"),
        "--tls-key-file",
        &pki.arg("key.pem"),
        "--tls-ca-cert-file",
        &pki.arg("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]);
    let mut plain = redis.conn().await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "relay", "on", ">relay-pw", "~redline:*", "+@all"][..])
        .query_async(&mut plain)
        .await
        .unwrap();
    let rediss = format!("rediss://relay:relay-pw@127.0.0.1:{tls_port}/");

    let listen = format!("127.0.0.1:{}", free_port());
    let mut producer_cmd = redline();
    producer_cmd
        .env("SSL_CERT_FILE", pki.path("ca.pem"))
        .args(["producer", "--redis-url", &rediss, "--listen", &listen])
        .args([
            "--tls-cert",
            &pki.arg("cert.pem"),
            "--tls-key",
            &pki.arg("key.pem"),
        ]);
    let producer = ChildGuard::spawn("producer", &mut producer_cmd);
    let out = pki.path("out.lp");
    let mut consumer_cmd = redline();
    consumer_cmd
        .env("SSL_CERT_FILE", pki.path("ca.pem"))
        .args(["consumer", "--redis-url", &rediss, "--consumer", "c1"])
        .args(["--sink", "file", "--file", out.to_str().unwrap()])
        .args(["--flush-interval", "100ms"]);
    let consumer = ChildGuard::spawn("consumer", &mut consumer_cmd);

    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("https://{listen}");
    wait_until(
        "the producer answers /ping over HTTPS",
        Duration::from_secs(15),
        || {
            let (https, ping) = (https.clone(), format!("{base}/ping"));
            async move { matches!(https.get(ping).send().await, Ok(r) if r.status() == 204) }
        },
    )
    .await;
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let plain_http = crate::support::client()
        .get(format!("http://{listen}/ping"))
        .send()
        .await;
    assert!(plain_http.is_err(), "{plain_http:?}");

    for n in 0..REQUESTS {
        let response = https
            .post(format!("{base}/write?db=tls"))
            .body(lines(n * LINES, LINES))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            204,
            "{}\n{}",
            response.text().await.unwrap_or_default(),
            producer.logs()
        );
    }
    let total = REQUESTS * LINES;
    let len: usize = redis::cmd("XLEN")
        .arg(STREAM)
        .query_async(&mut plain)
        .await
        .unwrap();
    assert_eq!(len, total, "one entry per metric, stored over rediss://");
    wait_until("every metric in the file", Duration::from_secs(30), || {
        let out = out.clone();
        async move { std::fs::read_to_string(&out).is_ok_and(|text| text.lines().count() >= total) }
    })
    .await;
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), total, "{}", consumer.logs());
    // Acked after the file sink fsynced: nothing stays pending.
    wait_until("nothing pending", Duration::from_secs(10), || {
        let mut plain = plain.clone();
        async move { crate::support::pending(&mut plain).await == Some(0) }
    })
    .await;
    // The ACL password never reaches the logs.
    assert!(!producer.logs().contains("relay-pw"), "{}", producer.logs());
    assert!(!consumer.logs().contains("relay-pw"), "{}", consumer.logs());
}

/// Terminates TLS (the test certificate) on a free port and forwards every connection to
/// `target` on loopback: InfluxDB 1.x over https, without reconfiguring `influxd`.
async fn tls_front(pki: &Pki, target: u16) -> (u16, tokio::task::JoinHandle<()>) {
    let acceptor =
        redline_producer::tls::acceptor(&pki.path("cert.pem"), &pki.path("key.pem")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_influxdb_sink_writes_over_https_to_a_private_ca() {
    const TOTAL: usize = 500;
    let pki = Pki::new();
    let redis = RedisServer::start(&[]);
    let influx = redline_testkit::InfluxServer::start();
    let (port, front) = tls_front(&pki, influx.port()).await;
    let mut conn = redis.conn().await;
    let mut pipe = redis::pipe();
    for line in lines(0, TOTAL).lines() {
        pipe.cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("lp")
            .arg(line)
            .ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();

    let url = format!("https://127.0.0.1:{port}");
    let mut cmd = crate::support::redline();
    cmd.env("SSL_CERT_FILE", pki.path("ca.pem"))
        .args(["consumer", "--redis-url", &redis.url(), "--consumer", "c1"])
        .args([
            "--sink",
            "influxdb",
            "--influx-url",
            &url,
            "--influx-db",
            "tls",
        ])
        .args(["--flush-interval", "100ms"]);
    let _consumer = ChildGuard::spawn("consumer", &mut cmd);
    crate::support::wait_for_count(&influx, "tls", TOTAL as u64, Duration::from_secs(60)).await;
    front.abort();
}
