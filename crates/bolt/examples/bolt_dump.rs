//! Prints the buckets, keys and values of a bbolt file (a debugging aid);
//! `bolt_dump FILE OUT` also writes the tree it read to OUT anew.

fn show(b: &[u8]) -> String {
    if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        format!("{:?}", String::from_utf8_lossy(b))
    } else {
        b.iter().map(|c| format!("{c:02x}")).collect()
    }
}

fn dump(b: &synod_bolt::Bucket, indent: usize) {
    for (k, e) in &b.entries {
        match e {
            synod_bolt::Entry::Value(v) => println!("{:indent$}{} = {}", "", show(k), show(v)),
            synod_bolt::Entry::Bucket(c) => {
                println!("{:indent$}[{}] seq {}", "", show(k), c.sequence);
                dump(c, indent + 2);
            }
        }
    }
}

fn main() {
    let path = std::env::args().nth(1).expect("a file");
    let bytes = std::fs::read(path).expect("readable");
    let db = synod_bolt::read(&bytes).expect("a bbolt file");
    println!("{:?}", db.meta);
    println!("problems: {:?}", db.problems());
    dump(&db.root, 0);
    // A second argument: the same tree written anew to that file.
    if let Some(out) = std::env::args().nth(2) {
        let file = synod_bolt::write(&db.root, synod_bolt::PAGE_SIZE, 2).expect("writable");
        std::fs::write(out, file).expect("written");
    }
}
