// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title EfficientHash
/// @notice `keccak256(abi.encode(a, b, c))` of three words, computed without allocating memory: the
/// three-word counterpart of OpenZeppelin's `Hashes.efficientKeccak256(a, b)`.
/// @dev Why it exists: it hashes the consent registry's record slots,
/// `keccak256(abi.encode(subject, partner, purpose))`, on every write and every consent check. The plain
/// expression allocates 128 bytes (a length word and the three words) and moves the free memory pointer on
/// each call, which costs about 150 gas more per lookup and makes memory grow with every item of a batch.
/// Hashed that way, `grant` costs about 47,630 gas (target 47,500) and the ledger's 100-conversion batch
/// about 8,100 gas per conversion (target 8,000), as measured with `scripts/bench_gas.py` (see
/// contracts/README.md, "Gas design and trade-offs").
///
/// Memory: it writes the 96 bytes `[m, m + 0x60)`, where `m = mload(0x40)` is the free memory pointer, and
/// hashes them. That memory is unallocated: nothing refers to it, and the free memory pointer is left
/// unchanged, so the next allocation simply reuses (and overwrites) it. It reads and writes nothing else.
/// This is the use of memory that Solidity documents as memory-safe (temporary data past the free memory
/// pointer, with no assumption about its content), hence `assembly ("memory-safe")`, which keeps the
/// optimizer free to move stack variables to memory.
///
/// The arguments are full words, so no higher-order bits can be dirty: callers convert narrower types with
/// Solidity's own conversions (e.g. `bytes32(uint256(uint160(partner)))`), which clean them.
/// `tests/contracts/test_efficient_hash.py` checks the result against `keccak256(abi.encode(a, b, c))` (on
/// chain and in Python) and that allocated memory and the free memory pointer are left untouched.
library EfficientHash {
    /// @notice `keccak256(abi.encode(a, b, c))`.
    /// @param a The first word.
    /// @param b The second word.
    /// @param c The third word.
    /// @return value The hash.
    function efficientKeccak256(bytes32 a, bytes32 b, bytes32 c) internal pure returns (bytes32 value) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, a)
            mstore(add(m, 0x20), b)
            mstore(add(m, 0x40), c)
            value := keccak256(m, 0x60)
        }
    }
}
