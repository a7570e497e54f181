// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {OPG} from "../OPG.sol";
import {SmartWallet} from "./utils/Actors.sol";
import {Test} from "./utils/Test.sol";

/// @dev Signing helpers for OPG's EIP-712 messages (permit and the three EIP-3009 authorizations).
abstract contract OPGSigning is Test {
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    OPG internal opg;

    function digest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", opg.DOMAIN_SEPARATOR(), structHash));
    }

    function signed(uint256 key, bytes32 structHash) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, structHash);
        return abi.encodePacked(r, s, v);
    }

    function authorization(
        bytes32 typeHash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) internal view returns (bytes32) {
        return digest(keccak256(abi.encode(typeHash, from, to, value, validAfter, validBefore, nonce)));
    }

    function cancellation(address authorizer, bytes32 nonce) internal view returns (bytes32) {
        return digest(keccak256(abi.encode(opg.CANCEL_AUTHORIZATION_TYPEHASH(), authorizer, nonce)));
    }
}

contract OPGTest is OPGSigning {
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

    uint256 internal constant CAP = 1_000_000 ether;
    uint256 internal constant NOW = 1_700_000_000;
    uint256 internal payerKey = 0xA11CE;
    address internal payer;
    address internal payee = address(0xB0B);
    bytes32 internal transferType;
    bytes32 internal receiveType;

    function setUp() public {
        vm.warp(NOW);
        opg = new OPG(address(this), CAP);
        payer = vm.addr(payerKey);
        opg.mint(payer, 1_000 ether);
        transferType = opg.TRANSFER_WITH_AUTHORIZATION_TYPEHASH();
        receiveType = opg.RECEIVE_WITH_AUTHORIZATION_TYPEHASH();
    }

    function test_metadata_cap_and_owner() public view {
        vm.assertEq(opg.name(), "OPG");
        vm.assertEq(opg.symbol(), "OPG");
        vm.assertEq(opg.decimals(), 18);
        vm.assertEq(opg.cap(), CAP);
        vm.assertEq(opg.owner(), address(this));
        vm.assertEq(opg.totalSupply(), 1_000 ether);
    }

    function test_a_zero_cap_is_rejected() public {
        vm.expectRevert(abi.encodeWithSelector(ERC20Capped.ERC20InvalidCap.selector, 0));
        new OPG(address(this), 0);
    }

    function test_only_the_owner_mints_and_never_beyond_the_cap() public {
        vm.prank(payee);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, payee));
        opg.mint(payee, 1);
        opg.mint(payee, CAP - 1_000 ether);
        vm.expectRevert(abi.encodeWithSelector(ERC20Capped.ERC20ExceededCap.selector, CAP + 1, CAP));
        opg.mint(payee, 1);
    }

    function test_permit_sets_allowance_once_per_nonce() public {
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, payer, payee, 5 ether, 0, NOW + 60));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, digest(structHash));
        opg.permit(payer, payee, 5 ether, NOW + 60, v, r, s);
        vm.assertEq(opg.allowance(payer, payee), 5 ether);
        vm.assertEq(opg.nonces(payer), 1);
        vm.expectRevert(); // replay: the nonce moved on, so the signer recovered is someone else
        opg.permit(payer, payee, 5 ether, NOW + 60, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(ERC20Permit.ERC2612ExpiredSignature.selector, NOW - 1));
        opg.permit(payer, payee, 5 ether, NOW - 1, v, r, s);
    }

    function test_transfer_with_authorization_in_both_encodings() public {
        bytes32 nonce = keccak256("one");
        bytes32 hash = authorization(transferType, payer, payee, 3 ether, NOW - 1, NOW + 1, nonce);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, hash);
        vm.expectEmit();
        emit AuthorizationUsed(payer, nonce);
        opg.transferWithAuthorization(payer, payee, 3 ether, NOW - 1, NOW + 1, nonce, v, r, s);
        vm.assertEq(opg.balanceOf(payee), 3 ether);
        vm.assertTrue(opg.authorizationState(payer, nonce));
        vm.expectRevert(abi.encodeWithSelector(OPG.AuthorizationAlreadyUsed.selector, payer, nonce));
        opg.transferWithAuthorization(payer, payee, 3 ether, NOW - 1, NOW + 1, nonce, v, r, s);

        bytes32 second = keccak256("two");
        bytes memory signature = signed(payerKey, authorization(transferType, payer, payee, 1 ether, 0, NOW + 1, second));
        opg.transferWithAuthorization(payer, payee, 1 ether, 0, NOW + 1, second, signature);
        vm.assertEq(opg.balanceOf(payee), 4 ether);
    }

    function test_authorizations_are_valid_strictly_inside_their_window() public {
        bytes32 nonce = keccak256("window");
        bytes memory early = signed(payerKey, authorization(transferType, payer, payee, 1, NOW, NOW + 10, nonce));
        vm.expectRevert(abi.encodeWithSelector(OPG.AuthorizationNotYetValid.selector, NOW));
        opg.transferWithAuthorization(payer, payee, 1, NOW, NOW + 10, nonce, early);
        bytes memory late = signed(payerKey, authorization(transferType, payer, payee, 1, 0, NOW, nonce));
        vm.expectRevert(abi.encodeWithSelector(OPG.AuthorizationExpired.selector, NOW));
        opg.transferWithAuthorization(payer, payee, 1, 0, NOW, nonce, late);
    }

    function test_wrong_signer_tampered_value_and_cross_type_replay_are_rejected() public {
        bytes32 nonce = keccak256("tamper");
        bytes memory signature = signed(payerKey, authorization(transferType, payer, payee, 1 ether, 0, NOW + 1, nonce));
        vm.expectRevert(OPG.InvalidSignature.selector);
        opg.transferWithAuthorization(payer, payee, 2 ether, 0, NOW + 1, nonce, signature);
        bytes memory stranger = signed(0xBAD, authorization(transferType, payer, payee, 1 ether, 0, NOW + 1, nonce));
        vm.expectRevert(OPG.InvalidSignature.selector);
        opg.transferWithAuthorization(payer, payee, 1 ether, 0, NOW + 1, nonce, stranger);
        vm.prank(payee);
        vm.expectRevert(OPG.InvalidSignature.selector);
        opg.receiveWithAuthorization(payer, payee, 1 ether, 0, NOW + 1, nonce, signature);
    }

    function test_receive_with_authorization_only_by_the_payee() public {
        bytes32 nonce = keccak256("receive");
        bytes32 hash = authorization(receiveType, payer, payee, 2 ether, 0, NOW + 1, nonce);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, hash);
        vm.expectRevert(abi.encodeWithSelector(OPG.CallerMustBePayee.selector, address(this), payee));
        opg.receiveWithAuthorization(payer, payee, 2 ether, 0, NOW + 1, nonce, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(OPG.CallerMustBePayee.selector, address(this), payee));
        opg.receiveWithAuthorization(payer, payee, 2 ether, 0, NOW + 1, nonce, abi.encodePacked(r, s, v));
        vm.prank(payee);
        opg.receiveWithAuthorization(payer, payee, 2 ether, 0, NOW + 1, nonce, v, r, s);
        vm.assertEq(opg.balanceOf(payee), 2 ether);
        bytes32 other = keccak256("receive-packed");
        bytes memory packed = signed(payerKey, authorization(receiveType, payer, payee, 1 ether, 0, NOW + 1, other));
        vm.prank(payee);
        opg.receiveWithAuthorization(payer, payee, 1 ether, 0, NOW + 1, other, packed);
        vm.assertEq(opg.balanceOf(payee), 3 ether);
    }

    function test_cancel_burns_the_nonce_in_both_encodings() public {
        bytes32 nonce = keccak256("cancel");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, cancellation(payer, nonce));
        vm.expectEmit();
        emit AuthorizationCanceled(payer, nonce);
        opg.cancelAuthorization(payer, nonce, v, r, s);
        bytes memory transfer = signed(payerKey, authorization(transferType, payer, payee, 1, 0, NOW + 1, nonce));
        vm.expectRevert(abi.encodeWithSelector(OPG.AuthorizationAlreadyUsed.selector, payer, nonce));
        opg.transferWithAuthorization(payer, payee, 1, 0, NOW + 1, nonce, transfer);
        bytes32 other = keccak256("cancel-packed");
        opg.cancelAuthorization(payer, other, signed(payerKey, cancellation(payer, other)));
        vm.assertTrue(opg.authorizationState(payer, other));
        bytes memory forged = signed(0xBAD, cancellation(payer, keccak256("x")));
        vm.expectRevert(OPG.InvalidSignature.selector);
        opg.cancelAuthorization(payer, keccak256("x"), forged);
    }

    function test_an_erc1271_wallet_authorizes_with_its_signer_key() public {
        SmartWallet wallet = new SmartWallet(payer);
        opg.mint(address(wallet), 10 ether);
        bytes32 nonce = keccak256("wallet");
        bytes memory signature = signed(payerKey, authorization(transferType, address(wallet), payee, 4 ether, 0, NOW + 1, nonce));
        opg.transferWithAuthorization(address(wallet), payee, 4 ether, 0, NOW + 1, nonce, signature);
        vm.assertEq(opg.balanceOf(payee), 4 ether);
        bytes32 second = keccak256("wallet-2");
        bytes memory stranger = signed(0xBAD, authorization(transferType, address(wallet), payee, 1, 0, NOW + 1, second));
        vm.expectRevert(OPG.InvalidSignature.selector);
        opg.transferWithAuthorization(address(wallet), payee, 1, 0, NOW + 1, second, stranger);
    }
}
