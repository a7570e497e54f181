// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {TwinKeys} from "../TwinKeys.sol";
import {Rejecter, Reenterer} from "./utils/Actors.sol";
import {Test} from "./utils/Test.sol";

/// @dev What the tests share: a market at the embedded chain's divisor with both fees at 5 %.
abstract contract TwinKeysFixture is Test {
    uint256 internal constant DIVISOR = 1_600_000;
    uint256 internal constant FEE = 0.05 ether;
    uint256 internal constant NOW = 1_700_000_000;

    TwinKeys internal keys;
    address internal owner = address(this);
    address internal treasury = address(0x7EA5);
    address internal creator = address(0xC0FFEE);
    address internal alice = address(0xA11CE);
    address internal bob = address(0xB0B);
    bytes16 internal id;

    function setUp() public virtual {
        vm.warp(NOW);
        keys = new TwinKeys(DIVISOR, FEE, FEE, treasury);
        id = keys.avatarIdFor(creator, 7);
        vm.deal(creator, 1_000 ether);
        vm.deal(alice, 1_000 ether);
        vm.deal(bob, 1_000 ether);
        vm.prank(creator);
        keys.createAvatar(id, "ipfs://twin", 1, 0, NOW);
    }

    /// Σ_{i<k} i² · 1e18 / divisor by summation, the curve's definition, for the fuzz tests.
    function referenceCumulative(uint256 k, uint256 divisor) internal pure returns (uint256) {
        uint256 sumOfSquares;
        for (uint256 i = 1; i < k; ++i) {
            sumOfSquares += i * i;
        }
        return sumOfSquares * 1 ether / divisor;
    }

    function buy(address who, bytes16 avatar, uint256 amount) internal returns (uint256 cost) {
        cost = keys.getBuyPriceAfterFee(avatar, amount);
        vm.prank(who);
        keys.buyKeys{value: cost}(avatar, amount, cost, NOW);
    }

    function sell(address who, bytes16 avatar, uint256 amount) internal returns (uint256 proceeds) {
        proceeds = keys.getSellPriceAfterFee(avatar, amount);
        vm.prank(who);
        keys.sellKeys(avatar, amount, proceeds, NOW);
    }
}

contract TwinKeysConstructorTest is Test {
    function test_constructor_sets_everything() public {
        TwinKeys keys = new TwinKeys(16_000, 0.01 ether, 0.02 ether, address(0x7EA5));
        vm.assertEq(keys.curveDivisor(), 16_000);
        vm.assertEq(keys.protocolFeePercent(), 0.01 ether);
        vm.assertEq(keys.creatorFeePercent(), 0.02 ether);
        vm.assertEq(keys.treasury(), address(0x7EA5));
        vm.assertEq(keys.owner(), address(this));
        vm.assertEq(keys.MAX_FEE_PERCENT(), 0.05 ether);
        vm.assertFalse(keys.paused());
    }

    function test_constructor_rejects_a_zero_divisor() public {
        vm.expectRevert(TwinKeys.ZeroDivisor.selector);
        new TwinKeys(0, 0, 0, address(1));
    }

    function test_constructor_rejects_fees_above_the_cap() public {
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.FeeTooHigh.selector, 0.05 ether + 1, 0.05 ether));
        new TwinKeys(1, 0.05 ether + 1, 0, address(1));
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.FeeTooHigh.selector, 0.05 ether + 1, 0.05 ether));
        new TwinKeys(1, 0, 0.05 ether + 1, address(1));
    }

    function test_constructor_rejects_a_zero_treasury() public {
        vm.expectRevert(TwinKeys.ZeroAddress.selector);
        new TwinKeys(1, 0, 0, address(0));
    }
}

contract TwinKeysCreateTest is TwinKeysFixture {
    event AvatarCreated(bytes16 indexed id, address indexed creator, string metadataURI);
    event Trade(
        address indexed trader,
        bytes16 indexed id,
        bool isBuy,
        uint256 shareAmount,
        uint256 ethAmount,
        uint256 protocolEthAmount,
        uint256 subjectEthAmount,
        uint256 supply
    );

    function test_create_makes_the_caller_creator_and_first_holder() public view {
        vm.assertEq(keys.keysSupply(id), 1);
        vm.assertEq(keys.keysBalance(id, creator), 1);
        vm.assertTrue(keys.isCreator(id, creator));
        vm.assertFalse(keys.isCreator(id, alice));
        vm.assertEq(address(keys).balance, 0);
    }

    function test_create_with_a_multi_key_first_buy_pays_curve_and_fees() public {
        bytes16 other = keys.avatarIdFor(alice, 1);
        uint256 price = keys.getPrice(0, 5);
        uint256 cost = price + price * FEE / 1 ether * 2;
        vm.expectEmit();
        emit AvatarCreated(other, alice, "ipfs://alice");
        vm.expectEmit();
        emit Trade(alice, other, true, 5, price, price * FEE / 1 ether, price * FEE / 1 ether, 5);
        vm.prank(alice);
        keys.createAvatar{value: cost + 1 ether}(other, "ipfs://alice", 5, cost, NOW);
        vm.assertEq(alice.balance, 1_000 ether - cost);
        vm.assertEq(address(keys).balance, cost);
        vm.assertEq(keys.creatorFees(other), price * FEE / 1 ether);
        vm.assertEq(keys.protocolFees(other), price * FEE / 1 ether);
    }

    function test_create_rejects_an_id_issued_to_another_account() public {
        bytes16 issuedToAlice = keys.avatarIdFor(alice, 3);
        vm.prank(bob);
        vm.expectRevert(TwinKeys.InvalidAvatarId.selector);
        keys.createAvatar(issuedToAlice, "", 1, 0, NOW);
    }

    function test_create_rejects_an_existing_avatar() public {
        vm.prank(creator);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.AvatarExists.selector, id));
        keys.createAvatar(id, "", 1, 0, NOW);
    }

    function test_create_rejects_zero_keys_and_an_expired_deadline() public {
        bytes16 other = keys.avatarIdFor(alice, 1);
        vm.startPrank(alice);
        vm.expectRevert(TwinKeys.ZeroAmount.selector);
        keys.createAvatar(other, "", 0, 0, NOW);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.DeadlineExpired.selector, NOW - 1));
        keys.createAvatar(other, "", 1, 0, NOW - 1);
        vm.stopPrank();
    }

    function test_create_is_paused_with_buys() public {
        keys.pause();
        bytes16 other = keys.avatarIdFor(alice, 1);
        vm.prank(alice);
        vm.expectRevert(TwinKeys.EnforcedPause.selector);
        keys.createAvatar(other, "", 1, 0, NOW);
    }
}

contract TwinKeysBuyTest is TwinKeysFixture {
    function test_buy_accrues_fees_and_refunds_the_excess() public {
        uint256 price = keys.getBuyPrice(id, 3);
        uint256 cost = keys.getBuyPriceAfterFee(id, 3);
        vm.assertEq(cost, price + 2 * (price * FEE / 1 ether));
        vm.prank(alice);
        keys.buyKeys{value: cost + 0.5 ether}(id, 3, cost, NOW);
        vm.assertEq(alice.balance, 1_000 ether - cost);
        vm.assertEq(keys.keysBalance(id, alice), 3);
        vm.assertEq(keys.keysSupply(id), 4);
        vm.assertEq(keys.creatorFees(id), price * FEE / 1 ether);
        vm.assertEq(keys.protocolFees(id), price * FEE / 1 ether);
        vm.assertEq(address(keys).balance, cost);
    }

    function test_buy_reverts_for_an_unknown_avatar() public {
        bytes16 unknown = keys.avatarIdFor(alice, 99);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.AvatarNotFound.selector, unknown));
        keys.buyKeys(unknown, 1, 0, NOW);
    }

    function test_buy_enforces_amount_deadline_bound_and_payment() public {
        uint256 cost = keys.getBuyPriceAfterFee(id, 2);
        vm.startPrank(alice);
        vm.expectRevert(TwinKeys.ZeroAmount.selector);
        keys.buyKeys(id, 0, 0, NOW);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.DeadlineExpired.selector, NOW - 1));
        keys.buyKeys{value: cost}(id, 2, cost, NOW - 1);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.TotalCostAboveMax.selector, cost, cost - 1));
        keys.buyKeys{value: cost}(id, 2, cost - 1, NOW);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.InsufficientPayment.selector, cost, cost - 1));
        keys.buyKeys{value: cost - 1}(id, 2, cost, NOW);
        vm.stopPrank();
    }

    function test_buy_rejects_a_supply_above_uint32() public {
        uint256 amount = uint256(type(uint32).max);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.SupplyOverflow.selector, amount + 1));
        keys.buyKeys(id, amount, type(uint256).max, NOW);
    }

    function test_buy_is_paused_and_resumes() public {
        keys.pause();
        vm.prank(alice);
        vm.expectRevert(TwinKeys.EnforcedPause.selector);
        keys.buyKeys(id, 1, type(uint256).max, NOW);
        keys.unpause();
        buy(alice, id, 1);
        vm.assertEq(keys.keysBalance(id, alice), 1);
    }

    function test_a_refund_the_buyer_rejects_reverts_the_buy() public {
        Rejecter rejecter = new Rejecter();
        uint256 cost = keys.getBuyPriceAfterFee(id, 1);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.EthTransferFailed.selector, address(rejecter), 1));
        rejecter.execute{value: cost + 1}(address(keys), abi.encodeCall(keys.buyKeys, (id, 1, cost, NOW)));
    }

    function test_fees_overflowing_uint112_revert_rather_than_truncate() public {
        TwinKeys steep = new TwinKeys(1, FEE, FEE, treasury);
        bytes16 avatar = steep.avatarIdFor(alice, 1);
        uint256 price = steep.getPrice(0, 1_000_000);
        uint256 cost = price + 2 * (price * FEE / 1 ether);
        vm.deal(alice, cost);
        vm.expectRevert(abi.encodeWithSelector(SafeCast.SafeCastOverflowedUintDowncast.selector, 112, price * FEE / 1 ether));
        vm.prank(alice);
        steep.createAvatar{value: cost}(avatar, "", 1_000_000, cost, NOW);
    }
}

contract TwinKeysSellTest is TwinKeysFixture {
    function setUp() public override {
        super.setUp();
        buy(alice, id, 5);
    }

    function test_sell_pays_price_minus_fees_and_accrues_them() public {
        uint256 price = keys.getSellPrice(id, 2);
        uint256 fee = price * FEE / 1 ether;
        uint256 creatorFeesBefore = keys.creatorFees(id);
        uint256 before = alice.balance;
        uint256 proceeds = sell(alice, id, 2);
        vm.assertEq(proceeds, price - 2 * fee);
        vm.assertEq(alice.balance, before + proceeds);
        vm.assertEq(keys.keysBalance(id, alice), 3);
        vm.assertEq(keys.keysSupply(id), 4);
        vm.assertEq(keys.creatorFees(id), creatorFeesBefore + fee);
    }

    function test_sell_reverts_on_zero_unknown_last_key_and_short_balance() public {
        vm.startPrank(alice);
        vm.expectRevert(TwinKeys.ZeroAmount.selector);
        keys.sellKeys(id, 0, 0, NOW);
        bytes16 unknown = keys.avatarIdFor(alice, 99);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.AvatarNotFound.selector, unknown));
        keys.sellKeys(unknown, 1, 0, NOW);
        vm.expectRevert(TwinKeys.CannotSellLastKey.selector);
        keys.sellKeys(id, 6, 0, NOW);
        vm.stopPrank();
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.InsufficientKeys.selector, 0, 1));
        keys.sellKeys(id, 1, 0, NOW);
    }

    function test_the_last_key_cannot_be_sold() public {
        sell(alice, id, 5);
        vm.prank(creator);
        vm.expectRevert(TwinKeys.CannotSellLastKey.selector);
        keys.sellKeys(id, 1, 0, NOW);
    }

    function test_sell_enforces_min_proceeds_and_deadline() public {
        uint256 proceeds = keys.getSellPriceAfterFee(id, 1);
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.ProceedsBelowMin.selector, proceeds, proceeds + 1));
        keys.sellKeys(id, 1, proceeds + 1, NOW);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.DeadlineExpired.selector, NOW - 1));
        keys.sellKeys(id, 1, 0, NOW - 1);
        vm.stopPrank();
    }

    function test_sells_work_while_paused_and_after_fee_changes() public {
        keys.pause();
        keys.setProtocolFeePercent(0);
        keys.setCreatorFeePercent(0.05 ether);
        uint256 price = keys.getSellPrice(id, 1);
        vm.assertEq(sell(alice, id, 1), price - price * FEE / 1 ether);
    }

    function test_proceeds_the_seller_rejects_revert_the_sell() public {
        Rejecter rejecter = new Rejecter();
        uint256 cost = keys.getBuyPriceAfterFee(id, 1);
        rejecter.execute{value: cost}(address(keys), abi.encodeCall(keys.buyKeys, (id, 1, cost, NOW)));
        uint256 proceeds = keys.getSellPriceAfterFee(id, 1);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.EthTransferFailed.selector, address(rejecter), proceeds));
        rejecter.execute(address(keys), abi.encodeCall(keys.sellKeys, (id, 1, 0, NOW)));
    }

    function test_sell_views_revert_where_the_sell_would() public {
        bytes16 unknown = keys.avatarIdFor(alice, 99);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.AvatarNotFound.selector, unknown));
        keys.getSellPriceAfterFee(unknown, 1);
        vm.expectRevert(TwinKeys.CannotSellLastKey.selector);
        keys.getSellPriceAfterFee(id, 6);
        vm.expectRevert(); // arithmetic underflow (panic 0x11): more keys than exist
        keys.getSellPrice(id, 7);
    }
}

contract TwinKeysWithdrawTest is TwinKeysFixture {
    event CreatorFeesWithdrawn(bytes16 indexed id, address indexed creator, address to, uint256 amount);
    event ProtocolFeesWithdrawn(bytes16 indexed id, address indexed treasury, address to, uint256 amount);

    function setUp() public override {
        super.setUp();
        buy(alice, id, 10);
    }

    function test_creator_withdraws_to_any_address() public {
        uint256 amount = keys.creatorFees(id);
        vm.expectEmit();
        emit CreatorFeesWithdrawn(id, creator, bob, amount);
        vm.prank(creator);
        keys.withdrawCreatorFees(id, payable(bob));
        vm.assertEq(bob.balance, 1_000 ether + amount);
        vm.assertEq(keys.creatorFees(id), 0);
        vm.prank(creator);
        vm.expectRevert(TwinKeys.NothingToWithdraw.selector);
        keys.withdrawCreatorFees(id, payable(bob));
    }

    function test_creator_withdrawal_checks_caller_and_receiver() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.NotCreator.selector, id));
        keys.withdrawCreatorFees(id, payable(alice));
        vm.prank(creator);
        vm.expectRevert(TwinKeys.ZeroAddress.selector);
        keys.withdrawCreatorFees(id, payable(address(0)));
    }

    function test_a_creator_that_rejects_eth_blocks_only_its_own_withdrawal() public {
        Rejecter rejecting = new Rejecter();
        bytes16 avatar = keys.avatarIdFor(address(rejecting), 1);
        rejecting.execute(address(keys), abi.encodeCall(keys.createAvatar, (avatar, "", 1, 0, NOW)));
        buy(alice, avatar, 4);
        sell(alice, avatar, 2);
        uint256 amount = keys.creatorFees(avatar);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.EthTransferFailed.selector, address(rejecting), amount));
        rejecting.execute(address(keys), abi.encodeCall(keys.withdrawCreatorFees, (avatar, payable(address(rejecting)))));
        rejecting.execute(address(keys), abi.encodeCall(keys.withdrawCreatorFees, (avatar, payable(bob))));
        vm.assertEq(bob.balance, 1_000 ether + amount);
    }

    function test_treasury_collects_listed_avatars_and_repeats_are_harmless() public {
        bytes16 other = keys.avatarIdFor(bob, 1);
        vm.prank(bob);
        keys.createAvatar(other, "", 1, 0, NOW);
        buy(alice, other, 2);
        uint256 first = keys.protocolFees(id);
        uint256 second = keys.protocolFees(other);
        bytes16[] memory ids = new bytes16[](3);
        (ids[0], ids[1], ids[2]) = (id, other, id);
        vm.expectEmit();
        emit ProtocolFeesWithdrawn(id, treasury, alice, first);
        vm.expectEmit();
        emit ProtocolFeesWithdrawn(other, treasury, alice, second);
        vm.prank(treasury);
        keys.withdrawProtocolFees(ids, payable(alice));
        vm.assertEq(keys.protocolFees(id) + keys.protocolFees(other), 0);
        vm.assertEq(address(keys).balance, keys.getPrice(0, 11) + keys.getPrice(0, 3) + keys.creatorFees(id)
            + keys.creatorFees(other));
        vm.prank(treasury);
        vm.expectRevert(TwinKeys.NothingToWithdraw.selector);
        keys.withdrawProtocolFees(ids, payable(alice));
    }

    function test_protocol_withdrawal_checks_caller_and_receiver() public {
        bytes16[] memory ids = new bytes16[](1);
        ids[0] = id;
        vm.prank(alice);
        vm.expectRevert(TwinKeys.NotTreasury.selector);
        keys.withdrawProtocolFees(ids, payable(alice));
        vm.prank(treasury);
        vm.expectRevert(TwinKeys.ZeroAddress.selector);
        keys.withdrawProtocolFees(ids, payable(address(0)));
    }

    function test_a_treasury_that_rejects_eth_blocks_only_its_own_withdrawal() public {
        Rejecter rejecting = new Rejecter();
        keys.setTreasury(address(rejecting));
        bytes16[] memory ids = new bytes16[](1);
        ids[0] = id;
        uint256 amount = keys.protocolFees(id);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.EthTransferFailed.selector, address(rejecting), amount));
        rejecting.execute(address(keys), abi.encodeCall(keys.withdrawProtocolFees, (ids, payable(address(rejecting)))));
        sell(alice, id, 3);
        rejecting.execute(address(keys), abi.encodeCall(keys.withdrawProtocolFees, (ids, payable(bob))));
        vm.assertEq(keys.protocolFees(id), 0);
    }
}

contract TwinKeysOwnerTest is TwinKeysFixture {
    event ProtocolFeePercentUpdated(uint256 previousPercent, uint256 newPercent);
    event CreatorFeePercentUpdated(uint256 previousPercent, uint256 newPercent);
    event TreasuryUpdated(address indexed previousTreasury, address indexed newTreasury);
    event Paused(address account);
    event Unpaused(address account);

    function test_fee_changes_are_capped_and_emitted() public {
        vm.expectEmit();
        emit ProtocolFeePercentUpdated(FEE, 0.01 ether);
        keys.setProtocolFeePercent(0.01 ether);
        vm.expectEmit();
        emit CreatorFeePercentUpdated(FEE, 0.02 ether);
        keys.setCreatorFeePercent(0.02 ether);
        vm.assertEq(keys.protocolFeePercent(), 0.01 ether);
        vm.assertEq(keys.creatorFeePercent(), 0.02 ether);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.FeeTooHigh.selector, FEE + 1, FEE));
        keys.setProtocolFeePercent(FEE + 1);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.FeeTooHigh.selector, FEE + 1, FEE));
        keys.setCreatorFeePercent(FEE + 1);
    }

    function test_treasury_change_moves_unclaimed_protocol_fees() public {
        buy(alice, id, 3);
        vm.expectEmit();
        emit TreasuryUpdated(treasury, bob);
        keys.setTreasury(bob);
        bytes16[] memory ids = new bytes16[](1);
        ids[0] = id;
        vm.prank(treasury);
        vm.expectRevert(TwinKeys.NotTreasury.selector);
        keys.withdrawProtocolFees(ids, payable(treasury));
        vm.prank(bob);
        keys.withdrawProtocolFees(ids, payable(bob));
        vm.expectRevert(TwinKeys.ZeroAddress.selector);
        keys.setTreasury(address(0));
    }

    function test_pause_and_unpause_emit_and_reject_repeats() public {
        vm.expectEmit();
        emit Paused(owner);
        keys.pause();
        vm.assertTrue(keys.paused());
        vm.expectRevert(TwinKeys.EnforcedPause.selector);
        keys.pause();
        vm.expectEmit();
        emit Unpaused(owner);
        keys.unpause();
        vm.expectRevert(TwinKeys.ExpectedPause.selector);
        keys.unpause();
    }

    function test_only_the_owner_runs_owner_functions() public {
        bytes[6] memory calls = [
            abi.encodeCall(keys.setProtocolFeePercent, (0)),
            abi.encodeCall(keys.setCreatorFeePercent, (0)),
            abi.encodeCall(keys.setTreasury, (alice)),
            abi.encodeCall(keys.pause, ()),
            abi.encodeCall(keys.unpause, ()),
            abi.encodeCall(keys.transferOwnership, (alice))
        ];
        for (uint256 i; i < calls.length; ++i) {
            vm.prank(alice);
            (bool ok, bytes memory reason) = address(keys).call(calls[i]);
            vm.assertFalse(ok);
            vm.assertEq(reason, abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        }
    }

    function test_ownership_moves_in_two_steps_and_cannot_be_renounced() public {
        keys.transferOwnership(alice);
        vm.assertEq(keys.pendingOwner(), alice);
        vm.assertEq(keys.owner(), owner);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, bob));
        keys.acceptOwnership();
        vm.prank(alice);
        keys.acceptOwnership();
        vm.assertEq(keys.owner(), alice);
        vm.prank(alice);
        vm.expectRevert(TwinKeys.RenounceDisabled.selector);
        keys.renounceOwnership();
    }
}

contract TwinKeysReentrancyTest is TwinKeysFixture {
    function test_refund_proceeds_and_withdrawal_callbacks_cannot_reenter() public {
        Reenterer attacker = new Reenterer();
        vm.deal(address(attacker), 100 ether);
        bytes[4] memory reentries = [
            abi.encodeCall(keys.buyKeys, (id, 1, type(uint256).max, NOW)),
            abi.encodeCall(keys.createAvatar, (keys.avatarIdFor(address(attacker), 1), "", 1, 0, NOW)),
            abi.encodeCall(keys.withdrawCreatorFees, (id, payable(address(0xBAD)))),
            abi.encodeCall(keys.sellKeys, (id, 1, 0, NOW))
        ];
        for (uint256 i; i < reentries.length; ++i) {
            attacker.arm(address(keys), reentries[i]);
            uint256 cost = keys.getBuyPriceAfterFee(id, 2);
            vm.prank(address(attacker));
            keys.buyKeys{value: cost + 1}(id, 2, cost, NOW);
            vm.prank(address(attacker));
            keys.sellKeys(id, 1, 0, NOW);
        }
        vm.assertEq(attacker.reentriesAttempted(), 8);
        vm.assertEq(attacker.reentriesSucceeded(), 0);
        vm.assertEq(attacker.lastReentryError(),
            abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector));
    }
}

contract TwinKeysViewTest is TwinKeysFixture {
    function test_avatar_ids_bind_their_creator_and_nonce() public view {
        bytes16 expected = bytes16(bytes12(keccak256(abi.encode(alice, uint32(5))))) | bytes16(uint128(5));
        vm.assertEq(bytes32(keys.avatarIdFor(alice, 5)), bytes32(expected));
        vm.assertTrue(keys.isCreator(expected, alice));
        vm.assertFalse(keys.isCreator(expected, bob));
    }

    function test_get_price_prices_up_to_2_64_keys_and_refuses_more() public {
        uint256 top = type(uint64).max;
        uint256 below = (top - 2) * (top - 1) * (2 * top - 3) / 6 * 1 ether / DIVISOR;
        vm.assertEq(keys.getPrice(top - 1, 1), (top - 1) * top * (2 * top - 1) / 6 * 1 ether / DIVISOR - below);
        vm.expectRevert(abi.encodeWithSelector(TwinKeys.SupplyOverflow.selector, top + 1));
        keys.getPrice(top, 1);
    }

    function test_views_of_fees_and_supply() public {
        buy(alice, id, 2);
        vm.assertEq(keys.keysSupply(id), 3);
        vm.assertEq(keys.getBuyPrice(id, 1), 9 * 1 ether / DIVISOR);
        vm.assertEq(keys.getSellPrice(id, 1), keys.getPrice(2, 1));
        vm.assertEq(keys.getSellPriceAfterFee(id, 1), keys.getPrice(2, 1) - 2 * (keys.getPrice(2, 1) * FEE / 1 ether));
        vm.assertEq(keys.creatorFees(id), keys.protocolFees(id));
    }
}

/// Fuzz: the closed form equals the defining sum, to the wei, and fees are what the README says.
contract TwinKeysFuzzTest is TwinKeysFixture {
    function testFuzz_price_is_the_reference_sum(uint256 supply, uint256 amount, uint256 divisor) public {
        supply = bound(supply, 0, 600);
        amount = bound(amount, 0, 600);
        divisor = bound(divisor, 1, 1e12);
        TwinKeys market = new TwinKeys(divisor, 0, 0, treasury);
        vm.assertEq(
            market.getPrice(supply, amount),
            referenceCumulative(supply + amount, divisor) - referenceCumulative(supply, divisor)
        );
    }

    function testFuzz_price_is_path_independent(uint256 supply, uint256 first, uint256 second) public view {
        supply = bound(supply, 0, type(uint32).max);
        first = bound(first, 0, type(uint32).max - supply);
        second = bound(second, 0, type(uint32).max - supply - first);
        vm.assertEq(
            keys.getPrice(supply, first) + keys.getPrice(supply + first, second),
            keys.getPrice(supply, first + second)
        );
    }

    function testFuzz_buy_then_sell_charges_exactly_the_fees(
        uint256 amount,
        uint256 protocolFee,
        uint256 creatorFee,
        uint256 overpay
    ) public {
        amount = bound(amount, 1, 300);
        protocolFee = bound(protocolFee, 0, FEE);
        creatorFee = bound(creatorFee, 0, FEE);
        overpay = bound(overpay, 0, 10 ether);
        keys.setProtocolFeePercent(protocolFee);
        keys.setCreatorFeePercent(creatorFee);
        uint256 price = keys.getBuyPrice(id, amount);
        uint256 buyFees = price * protocolFee / 1 ether + price * creatorFee / 1 ether;
        vm.deal(alice, price + buyFees + overpay);
        vm.prank(alice);
        keys.buyKeys{value: price + buyFees + overpay}(id, amount, price + buyFees, NOW);
        vm.assertEq(alice.balance, overpay);
        vm.prank(alice);
        keys.sellKeys(id, amount, 0, NOW);
        uint256 sellFees = price * protocolFee / 1 ether + price * creatorFee / 1 ether;
        vm.assertEq(alice.balance, overpay + price - sellFees);
        vm.assertEq(keys.creatorFees(id), 2 * (price * creatorFee / 1 ether));
        vm.assertEq(keys.protocolFees(id), 2 * (price * protocolFee / 1 ether));
        vm.assertEq(address(keys).balance, keys.creatorFees(id) + keys.protocolFees(id));
    }
}
