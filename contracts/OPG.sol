// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title OPG
/// @notice The token that pays LLM proxy nodes per request (x402 `exact` scheme). ERC-20 with
/// EIP-2612 `permit` and EIP-3009 transfer authorizations, with the function and type signatures
/// of USDC's FiatTokenV2_2 so that x402 facilitators settle it like USDC.
/// @dev EIP-712 domain: name "OPG", version "1". Signatures are checked with SignatureChecker, so
/// smart-contract wallets (ERC-1271) can authorize too. Minting policy: only the owner mints, and never
/// beyond `cap()`, fixed at construction (ERC20Capped: `ERC20ExceededCap`).
contract OPG is ERC20, ERC20Permit, ERC20Capped, Ownable2Step {
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH =
        keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");

    mapping(address authorizer => mapping(bytes32 nonce => bool used)) private _authorizationUsed;

    /// @notice An EIP-3009 authorization was executed.
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    /// @notice An EIP-3009 authorization was cancelled before use.
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

    /// @notice The authorization was submitted at or before its `validAfter` timestamp.
    error AuthorizationNotYetValid(uint256 validAfter);
    /// @notice The authorization was submitted at or after its `validBefore` timestamp.
    error AuthorizationExpired(uint256 validBefore);
    /// @notice The authorizer's nonce was already used or cancelled.
    error AuthorizationAlreadyUsed(address authorizer, bytes32 nonce);
    /// @notice The signature is not the authorizer's (EOA) nor accepted by its ERC-1271 check.
    error InvalidSignature();
    /// @notice receiveWithAuthorization submitted by someone other than the payee.
    error CallerMustBePayee(address caller, address payee);

    /// @param initialOwner The only account allowed to mint.
    /// @param supplyCap Most tokens that can ever exist (token units, non-zero).
    constructor(address initialOwner, uint256 supplyCap)
        ERC20("OPG", "OPG")
        ERC20Permit("OPG")
        ERC20Capped(supplyCap)
        Ownable(initialOwner)
    {}

    /// @notice Mint `amount` tokens to `to`; only the owner may, and the total supply never exceeds `cap()`.
    /// @param to Receiver.
    /// @param amount Token units (18 decimals).
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    /// @notice Whether `nonce` of `authorizer` was used or cancelled (USDC's EIP-3009 view).
    /// @param authorizer The signer of the authorization.
    /// @param nonce The authorization's unique nonce.
    /// @return used True once used or cancelled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool used) {
        return _authorizationUsed[authorizer][nonce];
    }

    /// @notice Execute a transfer signed by `from` (EIP-3009); anyone may submit it.
    /// @param from Payer and signer.
    /// @param to Payee.
    /// @param value Amount.
    /// @param validAfter The authorization is valid only after this timestamp (exclusive).
    /// @param validBefore The authorization is valid only before this timestamp (exclusive).
    /// @param nonce Unique 32-byte nonce chosen by the signer.
    /// @param v Signature v.
    /// @param r Signature r.
    /// @param s Signature s.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _authorizedTransfer(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, abi.encodePacked(r, s, v)
        );
    }

    /// @notice `transferWithAuthorization` with a packed or ERC-1271 signature.
    /// @param from Payer and signer.
    /// @param to Payee.
    /// @param value Amount.
    /// @param validAfter The authorization is valid only after this timestamp (exclusive).
    /// @param validBefore The authorization is valid only before this timestamp (exclusive).
    /// @param nonce Unique 32-byte nonce chosen by the signer.
    /// @param signature r ‖ s ‖ v for an EOA, or whatever `from`'s ERC-1271 check accepts.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        _authorizedTransfer(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature);
    }

    /// @notice Execute a transfer signed by `from`; only the payee `to` may submit it, which stops
    /// front-running of deposits into contracts (EIP-3009).
    /// @param from Payer and signer.
    /// @param to Payee, who must be the caller.
    /// @param value Amount.
    /// @param validAfter The authorization is valid only after this timestamp (exclusive).
    /// @param validBefore The authorization is valid only before this timestamp (exclusive).
    /// @param nonce Unique 32-byte nonce chosen by the signer.
    /// @param v Signature v.
    /// @param r Signature r.
    /// @param s Signature s.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        if (to != msg.sender) revert CallerMustBePayee(msg.sender, to);
        _authorizedTransfer(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, abi.encodePacked(r, s, v)
        );
    }

    /// @notice `receiveWithAuthorization` with a packed or ERC-1271 signature.
    /// @param from Payer and signer.
    /// @param to Payee, who must be the caller.
    /// @param value Amount.
    /// @param validAfter The authorization is valid only after this timestamp (exclusive).
    /// @param validBefore The authorization is valid only before this timestamp (exclusive).
    /// @param nonce Unique 32-byte nonce chosen by the signer.
    /// @param signature r ‖ s ‖ v for an EOA, or whatever `from`'s ERC-1271 check accepts.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external {
        if (to != msg.sender) revert CallerMustBePayee(msg.sender, to);
        _authorizedTransfer(RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature);
    }

    /// @notice Cancel an unused authorization of `authorizer` (EIP-3009).
    /// @param authorizer The signer of the authorization being cancelled.
    /// @param nonce Its nonce.
    /// @param v Signature v.
    /// @param r Signature r.
    /// @param s Signature s.
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external {
        _cancelAuthorization(authorizer, nonce, abi.encodePacked(r, s, v));
    }

    /// @notice `cancelAuthorization` with a packed or ERC-1271 signature.
    /// @param authorizer The signer of the authorization being cancelled.
    /// @param nonce Its nonce.
    /// @param signature r ‖ s ‖ v for an EOA, or whatever `authorizer`'s ERC-1271 check accepts.
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes calldata signature) external {
        _cancelAuthorization(authorizer, nonce, signature);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }

    function _authorizedTransfer(
        bytes32 typeHash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) private {
        if (block.timestamp <= validAfter) revert AuthorizationNotYetValid(validAfter);
        if (block.timestamp >= validBefore) revert AuthorizationExpired(validBefore);
        _useAuthorization(
            from, nonce, keccak256(abi.encode(typeHash, from, to, value, validAfter, validBefore, nonce)), signature
        );
        emit AuthorizationUsed(from, nonce);
        _transfer(from, to, value);
    }

    function _cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) private {
        _useAuthorization(
            authorizer, nonce, keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce)), signature
        );
        emit AuthorizationCanceled(authorizer, nonce);
    }

    /// @dev Check the nonce is fresh and the EIP-712 signature is `authorizer`'s, then burn the nonce.
    function _useAuthorization(address authorizer, bytes32 nonce, bytes32 structHash, bytes memory signature)
        private
    {
        if (_authorizationUsed[authorizer][nonce]) revert AuthorizationAlreadyUsed(authorizer, nonce);
        if (!SignatureChecker.isValidSignatureNow(authorizer, _hashTypedDataV4(structHash), signature)) {
            revert InvalidSignature();
        }
        _authorizationUsed[authorizer][nonce] = true;
    }
}
