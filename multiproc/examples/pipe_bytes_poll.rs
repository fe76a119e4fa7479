//! Seeds 002 and 000: a pipe carrying both objects (`send`/`recv`) and raw bytes
//! (`send_bytes`/`recv_bytes`), then `poll`, `recv_bytes_into`, `recv_bytes(maxlength)` and
//! EOF, each line ending with the seed's own words for the call.
//!
//! Run: `cargo run --example pipe_bytes_poll`. The first four lines are seed 002's output:
//! `MyProcess1--send--> 12345`, `MyProcess2--recv--> 12345`, `MyProcess2--send_bytes--> 哈哈`,
//! `MyProcess1--recv_bytes--> 哈哈`. Each process prints *before* it hands the pipe on, so
//! the order is always the seed's (in the seed's program it is a race).

use std::time::Duration;

use multiproc::{pipe, Connection, Error, Process, Run};

/// Seed 002's `MyProcess1`: sends an object, receives bytes.
struct MyProcess1 {
    con: Connection,
}

impl Run for MyProcess1 {
    type Output = ();

    fn run(mut self) {
        println!("MyProcess1--send--> 12345");
        self.con.send("12345").expect("send");
        let msg = self.con.recv_bytes().expect("recv_bytes");
        println!(
            "MyProcess1--recv_bytes--> {}",
            String::from_utf8_lossy(&msg)
        );
    }
}

/// Seed 002's `MyProcess2`: receives the object, answers with bytes.
struct MyProcess2 {
    con: Connection,
}

impl Run for MyProcess2 {
    type Output = ();

    fn run(mut self) {
        let msg: String = self.con.recv().expect("recv");
        println!("MyProcess2--recv--> {msg}");
        println!("MyProcess2--send_bytes--> 哈哈");
        self.con.send_bytes("哈哈".as_bytes()).expect("send_bytes");
    }
}

/// The name a Python reader knows for each error this example meets.
fn python_name(e: &Error) -> String {
    match e {
        Error::Eof => "EOFError".into(),
        Error::BufferTooShort { message } => {
            format!("BufferTooShort: b'{}'", String::from_utf8_lossy(message))
        }
        Error::MessageTooLong { len, max } => {
            format!("IOError: message of {len} bytes, maxlength {max}")
        }
        other => other.to_string(),
    }
}

/// Runs the example; `tour` calls it too.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Seed 002: two processes, one at each end.
    let (con1, con2) = pipe()?;
    let mut p1 = Process::new(MyProcess1 { con: con1 }).start()?;
    let mut p2 = Process::new(MyProcess2 { con: con2 }).start()?;
    p1.join()?;
    p2.join()?;

    // Seed 000's list of calls, seen from the parent; a child sends when told to.
    let (mut conn1, conn2) = pipe()?;
    let mut sender = Process::new(move || {
        let mut conn2 = conn2;
        let _: () = conn2.recv().expect("go");
        let buffer = b"hello world";
        conn2.send_bytes(&buffer[6..11]).expect("send_bytes"); // offset 6, size 5
        conn2.send_bytes(b"a longer message").expect("send_bytes");
        conn2.send_bytes(&[b'x'; 100]).expect("send_bytes");
    })
    .start()?;
    let python_bool = |b: bool| if b { "True" } else { "False" };
    println!(
        "conn1.poll() --> {}    # 如果省略此参数,方法将立即返回结果。",
        python_bool(conn1.poll(Some(Duration::ZERO))?)
    );
    conn1.send(&())?;
    println!(
        "conn1.poll(None) --> {}    # 如果将timeout射成None,操作将无限期地等待数据到达。",
        python_bool(conn1.poll(None)?)
    );
    let mut buffer = *b"..........";
    let n = conn1.recv_bytes_into(&mut buffer[3..])?;
    println!("conn1.recv_bytes_into(buffer, 3) --> {n}    # 返回值是收到的字节数。");
    println!(
        "buffer --> bytearray(b'{}')    # offset指定缓冲区中放置消息处的字节位移。",
        String::from_utf8_lossy(&buffer)
    );
    let mut small = [0u8; 4];
    let e = conn1.recv_bytes_into(&mut small).unwrap_err();
    println!(
        "conn1.recv_bytes_into(bytearray(4)) --> {}    # 如果消息长度大于可用的缓冲区空间,将引发BufferTooShort异常。",
        python_name(&e)
    );
    let e = conn1.recv_bytes_max(10).unwrap_err();
    println!(
        "conn1.recv_bytes(10) --> {}    # 如果进入的消息,超过了这个最大值,将引发IOError异常",
        python_name(&e)
    );
    sender.join()?;
    let e = conn1.recv::<String>().unwrap_err();
    println!(
        "conn1.recv() --> {}    # 如果连接的另外一端已经关闭,那么recv()方法会爆出error",
        python_name(&e)
    );
    let e = conn1.recv_bytes().unwrap_err();
    println!(
        "conn1.recv_bytes() --> {}    # 如果连接的另外一端已经关闭,再也不存在任何数据,将引发EOFError异常。",
        python_name(&e)
    );
    Ok(())
}
