//! iceoryx2 as a mechanism under test: a publish-subscribe service each way,
//! busy-polling subscribers.
//!
//! Configured like iceoryx2's own publish-subscribe latency benchmark (no
//! history, one publisher and one subscriber, `ipc::Service`, the next
//! sample loaned right after each send so the loan is off the round trip,
//! busy-polling `receive`), except: the subscriber buffer holds as many
//! samples as our rings have slots (its benchmark: 1) and a full buffer
//! makes the publisher retry instead of overwriting
//! (`enable_safe_overflow(false)`, `RetryUntilDelivered`), so the streaming
//! section loses nothing; payloads are copied in and out, as for every
//! other mechanism here (its benchmark sends uninitialised loans); and the
//! two sides are processes, not two threads of one.
//!
//! With a full buffer, iceoryx2's publisher waits inside `send` (its own
//! retry loop), outside our stall check: if the subscriber's process died
//! there, the bench's watchdog ends the run.

use std::mem::MaybeUninit;

use iceoryx2::port::LoanError;
use iceoryx2::prelude::*;
use iceoryx2::sample_mut_uninit::SampleMutUninit;

use crate::mech::{Rx, Tx, Wait, Waiter};

/// An iceoryx2 node (the bench makes one per message size in each
/// process), kept beside the ports made from it.
pub struct Node(iceoryx2::node::Node<ipc::Service>);

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("iox::Node")
    }
}

/// The publisher side.
pub struct IoxTx {
    publisher: iceoryx2::port::publisher::Publisher<ipc::Service, [u8], ()>,
    /// The sample the next send fills (loaned after the previous send).
    next: Option<SampleMutUninit<ipc::Service, [MaybeUninit<u8>], ()>>,
    size: usize,
}

/// The subscriber side.
pub struct IoxRx {
    subscriber: iceoryx2::port::subscriber::Subscriber<ipc::Service, [u8], ()>,
}

impl std::fmt::Debug for IoxTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoxTx").field("size", &self.size).finish()
    }
}

impl std::fmt::Debug for IoxRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoxRx")
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

impl Node {
    /// This process's node. iceoryx2's warnings (such as running without a
    /// config file) are silenced; errors still print.
    pub fn new() -> Res<Node> {
        set_log_level(LogLevel::Error);
        Ok(Node(NodeBuilder::new().create::<ipc::Service>()?))
    }

    /// Our ends of the service pair `name`/fwd and `name`/back for messages
    /// of `size` bytes, subscriber buffers of `depth` samples: the parent
    /// (`forward`) publishes on fwd and subscribes to back, the worker the
    /// other way round. Either side may come first.
    pub fn ends(
        &self,
        name: &str,
        size: usize,
        depth: usize,
        forward: bool,
    ) -> Res<(IoxTx, IoxRx)> {
        let service = |dir: &str| -> Res<_> {
            let name: ServiceName = format!("{name}/{dir}").as_str().try_into()?;
            Ok(self
                .0
                .service_builder(&name)
                .publish_subscribe::<[u8]>()
                .max_publishers(1)
                .max_subscribers(1)
                .history_size(0)
                .subscriber_max_buffer_size(depth)
                .enable_safe_overflow(false)
                .open_or_create()?)
        };
        let (out, inn) = if forward {
            (service("fwd")?, service("back")?)
        } else {
            (service("back")?, service("fwd")?)
        };
        let publisher = out
            .publisher_builder()
            .initial_max_slice_len(size)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()?;
        let subscriber = inn.subscriber_builder().buffer_size(depth).create()?;
        Ok((
            IoxTx {
                publisher,
                next: None,
                size,
            },
            IoxRx { subscriber },
        ))
    }
}

impl IoxTx {
    /// Loan a sample of `len` bytes, waiting while the pool is empty (the
    /// subscriber still holds them); any other loan error is a bug here.
    fn loan(&self, len: usize) -> SampleMutUninit<ipc::Service, [MaybeUninit<u8>], ()> {
        let mut w: Option<Waiter> = None;
        loop {
            match self.publisher.loan_slice_uninit(len) {
                Ok(s) => return s,
                Err(LoanError::OutOfMemory) => w
                    .get_or_insert_with(|| Waiter::new(Wait::Spin))
                    .wait("iceoryx2 loan"),
                Err(e) => panic!("iceoryx2 loan of {len} bytes: {e}"),
            }
        }
    }
}

impl Tx for IoxTx {
    fn send(&mut self, msg: &[u8]) {
        let sample = match self.next.take() {
            Some(s) if msg.len() == self.size => s,
            other => {
                // Give the pre-loaned sample back before loaning another.
                drop(other);
                self.loan(msg.len())
            }
        };
        if let Err(e) = sample.write_from_slice(msg).send() {
            panic!("iceoryx2 send: {e:?}");
        }
        self.next = Some(self.loan(self.size));
    }
}

impl Rx for IoxRx {
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let mut w: Option<Waiter> = None;
        loop {
            match self.subscriber.receive() {
                Ok(Some(sample)) => {
                    let p = sample.payload();
                    let n = p.len().min(buf.len());
                    buf[..n].copy_from_slice(&p[..n]);
                    return n;
                }
                Ok(None) => w
                    .get_or_insert_with(|| Waiter::new(Wait::Spin))
                    .wait("iceoryx2 receive"),
                Err(e) => panic!("iceoryx2 receive: {e:?}"),
            }
        }
    }
}
