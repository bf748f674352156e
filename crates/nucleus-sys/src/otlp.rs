//! OTLP/HTTP export: one POST of an encoded `ExportTraceServiceRequest` to a collector, over
//! plain HTTP/1.1 (the local collector or agent an operator points nucleus at).

use nucleus_spec::otlp::Endpoint;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// POST `body` (protobuf) to the endpoint; Ok when the collector answers 2xx.
pub fn post(e: &Endpoint, body: &[u8], timeout: Duration) -> io::Result<()> {
    let addr = (e.host.as_str(), e.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let host = if e.host.contains(':') {
        format!("[{}]:{}", e.host, e.port)
    } else {
        format!("{}:{}", e.host, e.port)
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        e.path,
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 1024];
    while !resp.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        resp.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&resp);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the collector answered {:?}",
            line.lines().next().unwrap_or("")
        )))
    }
}
