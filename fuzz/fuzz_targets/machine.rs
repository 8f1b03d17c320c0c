#![no_main]

use reauth_fuzz::machine::{check, MachineInput};

libfuzzer_sys::fuzz_target!(|input: MachineInput| check(&input));
