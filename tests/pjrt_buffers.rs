//! Host ↔ device round trips are bit-exact for every element type simclr
//! moves (f32, f64, s32, s64, u8, pred, bf16), including NaN payloads,
//! -0.0 and infinities, on the first and the last device.

use crate::pjrt_common as common;

use common::client;
use simclr::pjrt::{ArrayShape, ElementType, HostArray};

fn round_trip(array: &HostArray) {
    let c = client();
    for device in [c.devices().first().unwrap(), c.devices().last().unwrap()] {
        let buffer = c
            .buffer_from_host(array, device)
            .unwrap_or_else(|e| panic!("{} upload: {e}", array.shape()));
        assert_eq!(buffer.shape(), &array.shape());
        let back = buffer
            .to_host()
            .unwrap_or_else(|e| panic!("{} download: {e}", array.shape()));
        assert_eq!(back.element_type, array.element_type);
        assert_eq!(back.dims, array.dims);
        assert_eq!(
            back.bytes,
            array.bytes,
            "{} on {device} changed bits",
            array.shape()
        );
    }
}

#[test]
fn f32_round_trips_bit_exactly() {
    let v = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_0001), // quiet NaN with a payload
        f32::from_bits(0xffa0_1234), // negative signalling-pattern NaN
        f32::MIN_POSITIVE / 2.0,     // subnormal
        f32::MAX,
        1.0 / 3.0,
    ];
    let a = HostArray::from_f32(&[3, 3], &v).unwrap();
    round_trip(&a);
    let back = client()
        .buffer_from_host(&a, &client().devices()[0])
        .unwrap()
        .to_host()
        .unwrap()
        .to_f32()
        .unwrap();
    assert_eq!(
        back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn f64_round_trips_bit_exactly() {
    let v = [
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::from_bits(0x7ff8_0000_dead_beef),
        f64::MIN_POSITIVE / 4.0,
    ];
    round_trip(&HostArray::from_f64(&[2, 3], &v).unwrap());
}

#[test]
fn integer_types_round_trip() {
    round_trip(&HostArray::from_s32(&[5], &[0, -1, i32::MIN, i32::MAX, 42]).unwrap());
    round_trip(&HostArray::from_s64(&[2, 2], &[i64::MIN, i64::MAX, -7, 1 << 40]).unwrap());
    round_trip(&HostArray::from_u8(&[2, 2, 2], &[0, 1, 2, 127, 128, 200, 254, 255]).unwrap());
    round_trip(&HostArray::scalar_s32(-5));
}

#[test]
fn pred_round_trips() {
    let a = HostArray::from_pred(&[4], &[true, false, false, true]).unwrap();
    round_trip(&a);
    let back = client()
        .buffer_from_host(&a, &client().devices()[1])
        .unwrap()
        .to_host()
        .unwrap();
    assert_eq!(back.to_pred().unwrap(), vec![true, false, false, true]);
}

#[test]
fn bf16_round_trips_as_raw_bits() {
    let bits = [
        0x3f80u16, 0x8000, 0x7f80, 0xff80, 0x7fc1, 0xffff, 0x0001, 0xc020,
    ];
    let a = HostArray::from_bf16_bits(&[2, 4], &bits).unwrap();
    assert_eq!(a.element_type, ElementType::Bf16);
    round_trip(&a);
    let back = client()
        .buffer_from_host(&a, &client().devices()[2])
        .unwrap()
        .to_host()
        .unwrap();
    assert_eq!(back.to_bf16_bits().unwrap(), bits);
    assert_eq!(back.bf16_to_f32().unwrap()[7], -2.5);
}

#[test]
fn scalars_and_empty_arrays_round_trip() {
    round_trip(&HostArray::scalar_f32(-0.0));
    let empty = HostArray::from_f32(&[0, 3], &[]).unwrap();
    assert_eq!(empty.shape(), ArrayShape::new(ElementType::F32, vec![0, 3]));
    round_trip(&empty);
}
