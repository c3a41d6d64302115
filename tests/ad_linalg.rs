//! Dot-product VJP checks (f64, on `interp`) of `dot` (general dimension
//! numbers with batch dimensions) and `convolution` (random layouts,
//! strides, padding, lhs/rhs dilation, window reversal, feature groups),
//! w.r.t. both operands.

use crate::ad_support;

use ad_support::{check_vjp, input, Domain, Rng};
use proptest::prelude::*;
use simclr::ir::{ConvDims, DotDims, Window, WindowDim};

const TOL: f64 = 1e-6;

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

/// Places roles `0..n` at random positions: `pos[role]`.
fn placement(rng: &mut Rng, n: usize) -> Vec<i64> {
    rng.perm(n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn dot_general_vjp(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let (nb, nc, nl, nr) = (
            rng.int(0, 2) as usize,
            rng.int(0, 2) as usize,
            rng.int(0, 2) as usize,
            rng.int(0, 2) as usize,
        );
        let bs: Vec<i64> = (0..nb).map(|_| rng.int(1, 3)).collect();
        let cs: Vec<i64> = (0..nc).map(|_| rng.int(1, 3)).collect();
        let ls: Vec<i64> = (0..nl).map(|_| rng.int(1, 3)).collect();
        let rs: Vec<i64> = (0..nr).map(|_| rng.int(1, 3)).collect();
        // Roles: batch…, contracting…, free….
        let lp = placement(&mut rng, nb + nc + nl);
        let rp = placement(&mut rng, nb + nc + nr);
        let mut ld = vec![0; lp.len()];
        let mut rd = vec![0; rp.len()];
        for (role, &size) in bs.iter().chain(&cs).chain(&ls).enumerate() {
            ld[lp[role] as usize] = size;
        }
        for (role, &size) in bs.iter().chain(&cs).chain(&rs).enumerate() {
            rd[rp[role] as usize] = size;
        }
        let dn = DotDims {
            lhs_batch: lp[..nb].to_vec(),
            rhs_batch: rp[..nb].to_vec(),
            lhs_contracting: lp[nb..nb + nc].to_vec(),
            rhs_contracting: rp[nb..nb + nc].to_vec(),
        };
        check_vjp(
            &format!("dot {dn:?}"),
            &[input(&ld, Domain::Any), input(&rd, Domain::Any)],
            1, seed, TOL,
            &|x| x[0].dot_general(&x[1], dn.clone()),
        ).map_err(fail)?;
    }

    #[test]
    fn convolution_vjp(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let ns = rng.int(1, 2) as usize;
        let n = rng.int(1, 2);
        let groups = rng.int(1, 2);
        let cin = groups * rng.int(1, 2);
        let cout = groups * rng.int(1, 2);
        let mut wins = vec![];
        let mut in_sp = vec![];
        while wins.len() < ns {
            let wd = WindowDim {
                size: rng.int(1, 3),
                stride: rng.int(1, 2),
                pad_lo: rng.int(-1, 2),
                pad_hi: rng.int(-1, 2),
                window_dilation: rng.int(1, 2),
                base_dilation: rng.int(1, 2),
                reversal: rng.coin(),
            };
            let h = rng.int(1, 5);
            if wd.output_size(h).is_some_and(|o| o >= 1) {
                wins.push(wd);
                in_sp.push(h);
            }
        }
        let r = ns + 2;
        let (ip, kp, op) = (placement(&mut rng, r), placement(&mut rng, r), placement(&mut rng, r));
        let dn = ConvDims {
            input_batch: ip[0],
            input_feature: ip[1],
            input_spatial: ip[2..].to_vec(),
            kernel_output_feature: kp[0],
            kernel_input_feature: kp[1],
            kernel_spatial: kp[2..].to_vec(),
            output_batch: op[0],
            output_feature: op[1],
            output_spatial: op[2..].to_vec(),
        };
        let mut xd = vec![0; r];
        let mut wd = vec![0; r];
        xd[ip[0] as usize] = n;
        xd[ip[1] as usize] = cin;
        wd[kp[0] as usize] = cout;
        wd[kp[1] as usize] = cin / groups;
        for k in 0..ns {
            xd[ip[2 + k] as usize] = in_sp[k];
            wd[kp[2 + k] as usize] = wins[k].size;
        }
        let window = Window::new(wins);
        check_vjp(
            &format!("convolution {} window {} groups {groups}", dn.to_labels(), window.to_text()),
            &[input(&xd, Domain::Any), input(&wd, Domain::Any)],
            1, seed, TOL,
            &|x| x[0].conv_general(&x[1], window.clone(), dn.clone(), groups, 1),
        ).map_err(fail)?;
    }
}

/// Dimension labels, input dims, kernel dims, kernel size, stride, padding, groups.
type ConvCase = (&'static str, [i64; 4], [i64; 4], i64, i64, i64, i64);

/// The configurations verified on XLA in `HLO.md` §8.1, plus a depthwise one.
#[test]
fn convolution_vjp_on_resnet_configurations() {
    let cases: [ConvCase; 7] = [
        // labels, x dims, w dims, kernel, stride, pad, groups
        ("bf01_oi01->bf01", [2, 3, 5, 5], [4, 3, 3, 3], 3, 1, 1, 1),
        ("bf01_oi01->bf01", [2, 3, 7, 7], [4, 3, 3, 3], 3, 2, 1, 1),
        ("bf01_oi01->bf01", [1, 2, 8, 8], [2, 2, 7, 7], 7, 2, 3, 1),
        ("b01f_01io->b01f", [2, 7, 7, 3], [3, 3, 3, 4], 3, 2, 1, 1),
        ("b01f_01io->b01f", [2, 4, 4, 3], [1, 1, 3, 4], 1, 1, 0, 1),
        ("b01f_01io->b01f", [2, 8, 8, 3], [1, 1, 3, 4], 1, 2, 0, 1),
        ("b01f_01io->b01f", [1, 5, 5, 4], [3, 3, 1, 4], 3, 1, 1, 4),
    ];
    for (i, (labels, xd, wd, k, s, p, g)) in cases.into_iter().enumerate() {
        let dn = ConvDims::from_labels(labels).expect("labels");
        let window = Window::new(vec![WindowDim::new(k).stride(s).pad(p, p); 2]);
        let r = check_vjp(
            &format!("convolution {labels} k{k} s{s} p{p} g{g}"),
            &[input(&xd, Domain::Any), input(&wd, Domain::Any)],
            1,
            100 + i as u64,
            TOL,
            &|x| x[0].conv_general(&x[1], window.clone(), dn.clone(), g, 1),
        );
        assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}
