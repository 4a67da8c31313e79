//! Certificates for the TLS tests, made with rcgen in a tempdir: a CA, a server certificate for
//! localhost and 127.0.0.1, and client certificates (good, expired, from another CA).
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub cert_file: PathBuf,
}

/// A certificate and its key, as PEM files.
pub struct Pair {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let cert_file = dir.join(format!("{name}.pem"));
        std::fs::write(&cert_file, issuer.pem()).unwrap();
        Self { issuer, cert_file }
    }

    /// A certificate with these SANs (DNS names, `spiffe://...` URIs, IPs), valid now unless
    /// `expired`.
    pub fn issue(&self, dir: &Path, name: &str, sans: &[&str], expired: bool) -> Pair {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        for san in sans {
            params.subject_alt_names.push(if let Ok(ip) = san.parse() {
                SanType::IpAddress(ip)
            } else if san.contains("://") {
                SanType::URI((*san).try_into().unwrap())
            } else {
                SanType::DnsName((*san).try_into().unwrap())
            });
        }
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let pair = Pair {
            cert_file: dir.join(format!("{name}.pem")),
            key_file: dir.join(format!("{name}.key")),
        };
        std::fs::write(&pair.cert_file, cert.pem()).unwrap();
        std::fs::write(&pair.key_file, key.serialize_pem()).unwrap();
        pair
    }
}
