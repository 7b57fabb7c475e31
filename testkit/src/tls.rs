//! Certificates for the TLS servers tests start (SMTP, LDAP): a test CA and a server
//! certificate it signed for 127.0.0.1, made by `openssl`.

use std::process::{Command, Stdio};

/// A test CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 (`cert.pem`,
/// `key.pem`) in `dir`, made by `openssl`; returns the certificate's and key's paths.
pub fn certificate(dir: &std::path::Path) -> (String, String) {
    let path = |name: &str| dir.join(name).display().to_string();
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions file");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let steps: [Vec<String>; 3] = [
        ["req", "-x509"]
            .iter()
            .chain(ec.iter())
            .map(|s| (*s).to_owned())
            .chain(["-days", "2", "-subj", "/CN=Sekisho test CA", "-keyout"].map(str::to_owned))
            .chain([path("ca.key"), "-out".into(), path("ca.pem")])
            .collect(),
        ["req"]
            .iter()
            .chain(ec.iter())
            .map(|s| (*s).to_owned())
            .chain(["-subj", "/CN=127.0.0.1", "-keyout"].map(str::to_owned))
            .chain([path("key.pem"), "-out".into(), path("leaf.csr")])
            .collect(),
        ["x509", "-req", "-days", "2", "-CAcreateserial", "-in"]
            .map(str::to_owned)
            .into_iter()
            .chain([
                path("leaf.csr"),
                "-CA".into(),
                path("ca.pem"),
                "-CAkey".into(),
                path("ca.key"),
            ])
            .chain([
                "-extfile".into(),
                path("leaf.ext"),
                "-out".into(),
                path("cert.pem"),
            ])
            .collect(),
    ];
    for args in steps {
        let made = Command::new("openssl")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(made.success(), "openssl {args:?} failed");
    }
    (path("cert.pem"), path("key.pem"))
}
