//! The store's threading and waiting policy, used from Rust with no Python in the process.
//!
//! The bug story: the step lock, the read retries, the waits on the store lock (with recovery
//! of dead holders and timeouts) and the hand-back of dropped handles used to live in the
//! Python glue, so a Rust user of the object layer had none of them and would have had to copy
//! them. They are `object::SharedStore` now; these tests drive it from plain threads with
//! `Plain` waiting: increments from many threads lose nothing, readers racing writers only see
//! whole values, lockExcl in one thread makes another thread's timed lock call time out (and
//! its changes wait), and a closed store says so.

mod harness;

use harness::TempDir;
use persist::object::dict::{Key, NO_HINT};
use persist::object::tree::{Node, Tree};
use persist::object::view::Value;
use persist::object::{thread_id, Error, Plain, SharedStore, Store};
use persist::region::OpenOptionsRegion;
use std::sync::Arc;
use std::time::Duration;

const OPEN: OpenOptionsRegion = OpenOptionsRegion {
    create: true,
    durable: false,
    readonly: false,
};

fn with_key<T>(name: &str, f: impl FnOnce(&Key) -> T) -> T {
    let t = Tree::scalar(Node::Str(name.as_bytes().into()));
    let k = Key::new(&t, t.root).expect("key");
    f(&k)
}

fn get_int(st: &Store, name: &str) -> Result<Option<i64>, Error> {
    let root = st.root()?;
    let Some(w) = with_key(name, |k| st.dict_get(root, k, &mut NO_HINT.clone()))? else {
        return Ok(None);
    };
    match st.value(w)? {
        Value::Int(v) => Ok(Some(v)),
        v => panic!("{name} holds a {}", v.type_name()),
    }
}

fn set_int(st: &mut Store, name: &str, v: i64) -> Result<(), Error> {
    let root = st.root()?;
    let w = st.encode(&Tree::scalar(Node::Int(v)))?;
    with_key(name, |k| st.dict_set(root, k, w, &mut NO_HINT.clone()))?;
    Ok(())
}

#[test]
fn increments_from_many_threads_lose_nothing_and_readers_see_whole_pairs() {
    let dir = TempDir::new("shared-store");
    let shared = SharedStore::open(dir.join("s.db"), OPEN).unwrap();
    shared
        .write(&Plain, |st| {
            set_int(st, "n", 0)?;
            set_int(st, "twice", 0)
        })
        .unwrap();
    const THREADS: i64 = 4;
    const EACH: i64 = 500;
    let writers: Vec<_> = (0..THREADS)
        .map(|_| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    shared
                        .write(&Plain, |st| {
                            let n = get_int(st, "n")?.expect("n");
                            set_int(st, "n", n + 1)?;
                            set_int(st, "twice", 2 * (n + 1))
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let mut reads = 0;
            loop {
                let (n, twice) = shared
                    .read(&Plain, |st| {
                        Ok::<_, Error>((get_int(st, "n")?.unwrap(), get_int(st, "twice")?.unwrap()))
                    })
                    .unwrap();
                assert_eq!(twice, 2 * n, "a read saw half a change");
                reads += 1;
                if n == THREADS * EACH {
                    return reads;
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    assert!(reader.join().unwrap() > 0);
    let n = shared.read(&Plain, |st| get_int(st, "n")).unwrap().unwrap();
    assert_eq!(n, THREADS * EACH, "an increment was lost");
    shared.with(&Plain, |st| st.check(thread_id())).unwrap();
    shared.close(&Plain).unwrap();
}

#[test]
fn lock_excl_in_one_thread_times_out_another_and_holds_its_changes() {
    let dir = TempDir::new("shared-store");
    let shared = SharedStore::open(dir.join("s.db"), OPEN).unwrap();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let me = thread_id();
            shared
                .blocking(&Plain, None, |st| st.lock_excl(me))
                .unwrap();
            shared.write(&Plain, |st| set_int(st, "x", 1)).unwrap();
            locked_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            shared.with(&Plain, |st| st.unlock(me)).unwrap();
        })
    };
    locked_rx.recv().unwrap();
    let me = thread_id();
    let timed = shared.blocking(&Plain, Some(Duration::from_millis(100)), |st| {
        st.lock_excl(me)
    });
    assert!(matches!(timed, Err(Error::Timeout)), "{timed:?}");
    // A change waits for the section, then lands after it.
    let writer = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || shared.write(&Plain, |st| set_int(st, "x", 2)))
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !writer.is_finished(),
        "a change ran inside another thread's lockExcl"
    );
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    writer.join().unwrap().unwrap();
    let x = shared.read(&Plain, |st| get_int(st, "x")).unwrap();
    assert_eq!(x, Some(2));
    shared.close(&Plain).unwrap();
    assert!(shared.is_closed());
    let after = shared.read(&Plain, |st| get_int(st, "x"));
    assert!(matches!(after, Err(Error::Closed)), "{after:?}");
    // Closing twice is harmless.
    shared.close(&Plain).unwrap();
}
