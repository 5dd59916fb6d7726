//! NDArray files are untrusted input: decoding arbitrary bytes must return, never panic or
//! over-allocate, and whatever decodes must survive an encode/decode round trip.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run ndarray_file -- -max_total_time=600`
//! (seed `fuzz/corpus/ndarray_file/` with `tests/fixtures/mxnet-1.9.1/params/*.params`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mixnet::ndarray::file::{decode, encode, StoredArray};

fuzz_target!(|data: &[u8]| {
    let Ok((arrays, names)) = decode(data) else { return };
    let refs: Vec<&StoredArray> = arrays.iter().collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let bytes = encode(&refs, &name_refs).expect("what decodes must encode");
    let (again, again_names) = decode(&bytes).expect("what mixnet writes must decode");
    assert_eq!(again, arrays);
    assert_eq!(again_names, names);
    // Encoding is a function of the records alone, so a second round trip is byte-identical.
    let again_refs: Vec<&StoredArray> = again.iter().collect();
    assert_eq!(encode(&again_refs, &name_refs).expect("re-encode"), bytes);
});
