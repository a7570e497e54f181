// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @dev An account that is a contract rejecting every ETH transfer: as a trader (its refunds and
/// proceeds fail), a creator or a treasury (its withdrawals fail) it must block nobody else.
contract Rejecter {
    /// Forward a call, with value, as this contract; bubbles the callee's revert.
    function execute(address target, bytes calldata data) external payable returns (bytes memory result) {
        bool ok;
        (ok, result) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
    }

    receive() external payable {
        revert("Rejecter: no ETH");
    }
}

/// @dev An account whose ETH callback (a refund, sell proceeds, a withdrawal) re-enters its target with
/// the call it was armed with, and counts re-entries that got through (there must be none).
contract Reenterer {
    address public target;
    bytes public reentry;
    uint256 public reentriesAttempted;
    uint256 public reentriesSucceeded;
    bytes public lastReentryError;

    function arm(address target_, bytes calldata reentry_) external {
        target = target_;
        reentry = reentry_;
    }

    receive() external payable {
        if (target == address(0)) return;
        reentriesAttempted += 1;
        (bool ok, bytes memory result) = target.call(reentry);
        if (ok) reentriesSucceeded += 1;
        else lastReentryError = result;
    }
}

/// @dev An ERC-1271 smart-contract wallet whose valid signatures are its signer key's ECDSA signatures
/// of the hash (r ‖ s ‖ v).
contract SmartWallet {
    address public immutable signer;

    constructor(address signer_) {
        signer = signer_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) return 0xffffffff;
        (bytes32 r, bytes32 s) = abi.decode(signature[:64], (bytes32, bytes32));
        address recovered = ecrecover(hash, uint8(signature[64]), r, s);
        return recovered != address(0) && recovered == signer ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }
}
