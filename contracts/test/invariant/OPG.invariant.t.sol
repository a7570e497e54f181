// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {OPG} from "../../OPG.sol";
import {SmartWallet} from "../utils/Actors.sol";
import {FuzzSelector, Test, Vm} from "../utils/Test.sol";

/// @dev Drives OPG with mints (also beyond the cap), transfers, permits, and EIP-3009 transfer, receive
/// and cancel authorizations signed by EOAs and by an ERC-1271 wallet, over a small pool of nonces
/// (so that replays are tried) and windows around the current time (so that early and late ones are).
contract OPGHandler {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    bytes32 private constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    OPG public immutable opg;
    uint256[] private _keys;
    address[] public holders; // the EOAs of _keys, then the wallet
    SmartWallet public immutable wallet;

    uint256 public minted;
    uint256 public permitsUsed;
    bool public replayAccepted;
    bool public outOfWindowAccepted;
    bool public badSignatureAccepted;
    mapping(address => mapping(bytes32 => bool)) public ghostUsed;
    bytes32[] private _usedAuthorizers;
    bytes32[] private _usedNonces;
    mapping(address => uint256) public ghostPermitNonce;

    constructor(OPG opg_, uint256[] memory keys_, SmartWallet wallet_) {
        opg = opg_;
        _keys = keys_;
        wallet = wallet_;
        for (uint256 i; i < keys_.length; ++i) {
            holders.push(vm.addr(keys_[i]));
        }
        holders.push(address(wallet_));
    }

    function holderCount() external view returns (uint256) {
        return holders.length;
    }

    function usedCount() external view returns (uint256) {
        return _usedNonces.length;
    }

    function used(uint256 i) external view returns (address, bytes32) {
        return (address(uint160(uint256(_usedAuthorizers[i]))), _usedNonces[i]);
    }

    function mint(uint256 holderSeed, uint256 amount) external {
        amount = amount % (opg.cap() / 4);
        vm.prank(opg.owner());
        try opg.mint(holders[holderSeed % holders.length], amount) {
            minted += amount;
        } catch {}
    }

    function transfer(uint256 fromSeed, uint256 toSeed, uint256 amount) external {
        address from = holders[fromSeed % holders.length];
        amount = amount % (opg.balanceOf(from) + 1);
        vm.prank(from);
        opg.transfer(holders[toSeed % holders.length], amount);
    }

    /// A permit signed by holder `ownerSeed` for the current nonce, or, with `stale`, a past one.
    function permit(uint256 ownerSeed, uint256 spenderSeed, uint256 value, bool stale) external {
        uint256 i = ownerSeed % _keys.length;
        address owner = holders[i];
        uint256 nonce = opg.nonces(owner);
        if (stale && nonce > 0) nonce -= 1;
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, owner, holders[spenderSeed % holders.length], value, nonce, block.timestamp));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(_keys[i], _digest(structHash));
        try opg.permit(owner, holders[spenderSeed % holders.length], value, block.timestamp, v, r, s) {
            if (nonce != ghostPermitNonce[owner]) replayAccepted = true;
            ghostPermitNonce[owner] += 1;
            permitsUsed += 1;
        } catch {}
    }

    /// One authorization as the handler builds it (a struct keeps the legacy pipeline, which
    /// `forge coverage` uses, within the stack).
    struct Authorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
        uint256 key;
    }

    /// A transfer (kind 0), receive (kind 1) or cancel (kind 2) authorization from an EOA or the wallet,
    /// signed by the right key or (with `forged`) by another one.
    function authorize(
        uint256 kind,
        uint256 fromSeed,
        uint256 toSeed,
        uint256 value,
        uint8 nonceSeed,
        int8 afterOffset,
        int8 beforeOffset,
        bool forged
    ) external {
        Authorization memory a;
        uint256 signerIndex = fromSeed % (_keys.length + 1);
        a.from = signerIndex == _keys.length ? address(wallet) : holders[signerIndex];
        a.key = forged ? 0xF0263D : _keys[signerIndex % _keys.length];
        a.to = holders[toSeed % holders.length];
        a.value = value % (opg.balanceOf(a.from) + 1);
        a.nonce = bytes32(uint256(nonceSeed % 8));
        a.validAfter = _offset(afterOffset);
        a.validBefore = _offset(beforeOffset);
        bool usedBefore = ghostUsed[a.from][a.nonce];
        bool ok = kind % 3 == 2 ? _cancel(a) : _transfer(kind % 3 == 1, a);
        if (!ok) return;
        if (usedBefore) replayAccepted = true;
        if (forged) badSignatureAccepted = true;
        ghostUsed[a.from][a.nonce] = true;
        _usedAuthorizers.push(bytes32(uint256(uint160(a.from))));
        _usedNonces.push(a.nonce);
    }

    function _cancel(Authorization memory a) private returns (bool ok) {
        bytes32 structHash = keccak256(abi.encode(opg.CANCEL_AUTHORIZATION_TYPEHASH(), a.from, a.nonce));
        try opg.cancelAuthorization(a.from, a.nonce, _sign(a.key, structHash)) {
            ok = true;
        } catch {}
    }

    function _transfer(bool asReceive, Authorization memory a) private returns (bool ok) {
        bytes32 typeHash =
            asReceive ? opg.RECEIVE_WITH_AUTHORIZATION_TYPEHASH() : opg.TRANSFER_WITH_AUTHORIZATION_TYPEHASH();
        bytes memory signature = _sign(
            a.key, keccak256(abi.encode(typeHash, a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce))
        );
        if (asReceive) {
            vm.prank(a.to);
            try opg.receiveWithAuthorization(a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, signature) {
                ok = true;
            } catch {}
        } else {
            try opg.transferWithAuthorization(a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, signature) {
                ok = true;
            } catch {}
        }
        if (ok && (block.timestamp <= a.validAfter || block.timestamp >= a.validBefore)) outOfWindowAccepted = true;
    }

    function warp(uint8 seconds_) external {
        vm.warp(block.timestamp + seconds_);
    }

    function _offset(int8 offset) private view returns (uint256) {
        return offset < 0 ? block.timestamp - uint256(uint8(-(offset + 1))) - 1 : block.timestamp + uint256(uint8(offset));
    }

    function _digest(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", opg.DOMAIN_SEPARATOR(), structHash));
    }

    function _sign(uint256 key, bytes32 structHash) private view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, _digest(structHash));
        return abi.encodePacked(r, s, v);
    }
}

contract OPGInvariantTest is Test {
    uint256 private constant CAP = 1_000_000 ether;
    OPG private opg;
    OPGHandler private handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        uint256[] memory keys = new uint256[](3);
        (keys[0], keys[1], keys[2]) = (0xA11CE, 0xB0B, 0xCA401);
        opg = new OPG(address(this), CAP);
        handler = new OPGHandler(opg, keys, new SmartWallet(vm.addr(keys[0])));
        opg.transferOwnership(address(handler));
        vm.prank(address(handler));
        opg.acceptOwnership();

        bytes4[] memory selectors = new bytes4[](5);
        selectors[0] = handler.mint.selector;
        selectors[1] = handler.transfer.selector;
        selectors[2] = handler.permit.selector;
        selectors[3] = handler.authorize.selector;
        selectors[4] = handler.warp.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
        targetContract(address(handler));
    }

    /// The supply is what was minted, never above the cap, and all of it is held by the holders.
    function invariant_supply_accounting() public view {
        vm.assertEq(opg.totalSupply(), handler.minted(), "supply != minted");
        vm.assertLe(opg.totalSupply(), CAP, "supply above cap");
        uint256 held;
        for (uint256 i; i < handler.holderCount(); ++i) {
            held += opg.balanceOf(handler.holders(i));
        }
        vm.assertEq(held, opg.totalSupply(), "balances != supply");
    }

    /// Each nonce is used at most once, only inside its window, only with its authorizer's signature
    /// (EOA or ERC-1271), and every nonce used reads as used.
    function invariant_authorizations_are_single_use_in_window_and_signed() public view {
        vm.assertFalse(handler.replayAccepted(), "nonce replayed");
        vm.assertFalse(handler.outOfWindowAccepted(), "authorization outside its window");
        vm.assertFalse(handler.badSignatureAccepted(), "forged signature accepted");
        for (uint256 i; i < handler.usedCount(); ++i) {
            (address authorizer, bytes32 nonce) = handler.used(i);
            vm.assertTrue(opg.authorizationState(authorizer, nonce), "used nonce not marked");
        }
    }

    /// Permit nonces count the permits that went through, one each.
    function invariant_permit_nonces() public view {
        uint256 total;
        for (uint256 i; i < handler.holderCount(); ++i) {
            address holder = handler.holders(i);
            vm.assertEq(opg.nonces(holder), handler.ghostPermitNonce(holder), "permit nonce");
            total += opg.nonces(holder);
        }
        vm.assertEq(total, handler.permitsUsed());
    }
}
