// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EfficientHash} from "../../../contracts/utils/EfficientHash.sol";

/// @notice Exposes `EfficientHash` next to the plain `keccak256(abi.encode(...))` it replaces, for
/// tests/contracts/test_efficient_hash.py. Compiled by that test with the production compiler settings.
contract EfficientHashHarness {
    /// @notice The helper and the plain expression, for the same three words.
    function both(bytes32 a, bytes32 b, bytes32 c) external pure returns (bytes32 efficient, bytes32 plain) {
        efficient = EfficientHash.efficientKeccak256(a, b, c);
        plain = keccak256(abi.encode(a, b, c));
    }

    /// @notice A consent record's slot as the registry derives it (the helper over the converted words),
    /// and `keccak256(abi.encode(subject, partner, purpose))`. `partnerWord` and `purposeWord` are put into
    /// the `address` and the `uint8` as they are, higher-order bits included, as inline assembly or an
    /// unchecked computation can leave them.
    function recordSlot(bytes32 subject, uint256 partnerWord, uint256 purposeWord)
        external
        pure
        returns (bytes32 efficient, bytes32 plain)
    {
        address partner;
        uint8 purpose;
        assembly {
            partner := partnerWord
            purpose := purposeWord
        }
        efficient =
            EfficientHash.efficientKeccak256(subject, bytes32(uint256(uint160(partner))), bytes32(uint256(purpose)));
        plain = keccak256(abi.encode(subject, partner, purpose));
    }

    /// @notice Calls the helper between allocations and reports what it left behind: whether the free
    /// memory pointer moved, whether memory allocated before was changed, and whether memory allocated
    /// after it (where the helper wrote) is what was written there.
    function memoryEffects(bytes32 a, bytes32 b, bytes32 c)
        external
        pure
        returns (bool pointerMoved, bool allocatedChanged, bool nextAllocationIntact, bytes32 value)
    {
        bytes memory allocated = abi.encode(c, b, a);
        bytes32 digestBefore = keccak256(allocated);
        uint256 pointerBefore;
        assembly {
            pointerBefore := mload(0x40)
        }
        value = EfficientHash.efficientKeccak256(a, b, c);
        uint256 pointerAfter;
        assembly {
            pointerAfter := mload(0x40)
        }
        pointerMoved = pointerAfter != pointerBefore;
        allocatedChanged = keccak256(allocated) != digestBefore;
        bytes32[3] memory next = [c, a, b];
        nextAllocationIntact = next[0] == c && next[1] == a && next[2] == b;
    }
}
