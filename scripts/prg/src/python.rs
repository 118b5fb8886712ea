//! The Python module `coordinator._prg_native`.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{apply, best_kernel, blocks_bytes, Kernel, Op};

fn seed32(seed: &[u8]) -> PyResult<[u8; 32]> {
    seed.try_into().map_err(|_| PyValueError::new_err("PRG seeds are 32 bytes"))
}

fn kernel(name: Option<&str>) -> PyResult<Kernel> {
    match name {
        None => Ok(best_kernel()),
        Some(n) => match Kernel::from_name(n) {
            Some(k) if k.available() => Ok(k),
            _ => Err(PyValueError::new_err(format!("PRG kernel {n:?} is not available on this CPU"))),
        },
    }
}

fn check_range(first: u64, blocks: u64) -> PyResult<()> {
    if blocks > 0 && first.checked_add(blocks - 1).is_none() {
        return Err(PyOverflowError::new_err("PRG counter passes 2^64 - 1"));
    }
    Ok(())
}

/// The 32·blocks bytes keccak256(seed ‖ uint256_be(first + j)), j < blocks.
#[pyfunction]
#[pyo3(signature = (seed, first, blocks, kernel=None))]
fn prg_blocks<'py>(py: Python<'py>, seed: &[u8], first: u64, blocks: usize,
                   kernel: Option<&str>) -> PyResult<Bound<'py, PyBytes>> {
    let s = seed32(seed)?;
    let k = self::kernel(kernel)?;
    check_range(first, blocks as u64)?;
    let len = blocks.checked_mul(32).ok_or_else(|| PyOverflowError::new_err("too many blocks"))?;
    PyBytes::new_with(py, len, |buf| {
        py.detach(|| blocks_bytes(k, &s, first, buf));
        Ok(())
    })
}

/// Applies PRG(seed) elements 8·first … to the writable, C-contiguous
/// uint32 buffer `out` in place: op 0 sets, 1 adds, −1 subtracts (mod 2^32).
#[pyfunction]
#[pyo3(signature = (out, seed, first, op, kernel=None))]
fn prg_apply(py: Python<'_>, out: &Bound<'_, PyAny>, seed: &[u8], first: u64, op: i32,
             kernel: Option<&str>) -> PyResult<()> {
    let s = seed32(seed)?;
    let k = self::kernel(kernel)?;
    let op = match op {
        0 => Op::Set,
        1 => Op::Add,
        -1 => Op::Sub,
        _ => return Err(PyValueError::new_err("op is 0 (set), 1 (add) or -1 (subtract)")),
    };
    let buf: PyBuffer<u32> = PyBuffer::get(out)?;
    if buf.readonly() || !buf.is_c_contiguous() {
        return Err(PyValueError::new_err("the output must be a writable, C-contiguous uint32 buffer"));
    }
    let n = buf.item_count();
    check_range(first, n.div_ceil(8) as u64)?;
    let ptr = buf.buf_ptr() as usize;
    // The buffer stays exported (pinned) while `buf` lives; the GIL is released
    // for the computation only.
    py.detach(move || {
        let dst = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u32, n) };
        apply(k, &s, first, dst, op);
    });
    drop(buf);
    Ok(())
}

/// The kernel `prg_*` use by default (the fastest that passed its self-check).
#[pyfunction]
fn default_kernel() -> &'static str {
    best_kernel().name()
}

/// Kernels this CPU can run, portable first.
#[pyfunction]
fn kernels() -> Vec<&'static str> {
    [Kernel::Portable, Kernel::Avx2, Kernel::Avx512]
        .into_iter()
        .filter(|k| k.available())
        .map(Kernel::name)
        .collect()
}

#[pymodule]
fn _prg_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(prg_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(prg_apply, m)?)?;
    m.add_function(wrap_pyfunction!(default_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(kernels, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
