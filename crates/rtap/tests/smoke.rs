mod common;
use common::*;
use rtap::*;
use std::time::Duration;

#[test]
fn smoke_rx_tx() {
    netns();
    let mut port = TapPort::open(TapConfig::new("smk%d")).unwrap();
    port.start().unwrap();
    let pool = Pool::new(PoolConfig::default()).unwrap();
    let mut rxq = port.rx_queue(0, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let ps = PacketSocket::bind(port.ifindex());
    for i in 0..10 {
        ps.send(&test_frame(100, i)).unwrap();
    }
    let got = rx_test_frames(&mut rxq, 10, Duration::from_secs(2));
    assert_eq!(got.len(), 10);
    assert_eq!(got[3].to_vec(), test_frame(100, 3));
    drop(got);
    let mut v = vec![pool.alloc_from(&test_frame(200, 77)).unwrap()];
    assert_eq!(txq.tx_burst(&mut v).unwrap(), 1);
    let cap = ps.recv_test_frames(1, Duration::from_secs(2));
    assert_eq!(cap.len(), 1);
    assert_eq!(cap[0], test_frame(200, 77));
    assert!(txq.flush(Duration::from_secs(1)));
    println!("{:?}", port.stats().unwrap());
    drop(rxq);
    drop(txq);
    assert_eq!(pool.available(), pool.capacity() as usize);
    port.stop().unwrap();
}
