// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {TwinKeys} from "../../TwinKeys.sol";
import {Rejecter, Reenterer} from "../utils/Actors.sol";
import {FuzzSelector, Test, Vm} from "../utils/Test.sol";

/// @dev Drives TwinKeys with random launches, buys (with overpayment), sells, buy-then-sell round
/// trips, withdrawals, fee changes (also above the cap), pauses, treasury and ownership changes. The
/// actors are three EOAs, a contract that rejects ETH and a contract that re-enters on every callback;
/// creators and the treasury are drawn from the same actors. What must never happen is recorded in
/// ghost flags that the invariants read (a handler's own revert would only be discarded).
contract TwinKeysHandler {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 private constant DEADLINE = type(uint256).max;

    TwinKeys public immutable keys;
    address[] public actors;
    bytes16[] public avatars;
    address public immutable rejecter;
    Reenterer public immutable reenterer;
    address public ownerCandidate;

    bool public sellBlocked;
    bool public roundTripGained;
    bool public pausedBuySucceeded;

    constructor(TwinKeys keys_, address[] memory actors_, address rejecter_, Reenterer reenterer_) {
        keys = keys_;
        actors = actors_;
        rejecter = rejecter_;
        reenterer = reenterer_;
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function avatarCount() external view returns (uint256) {
        return avatars.length;
    }

    function _actor(uint256 seed) private view returns (address) {
        return actors[seed % actors.length];
    }

    function _avatar(uint256 seed) private view returns (bytes16) {
        return avatars[seed % avatars.length];
    }

    /// Arms the re-entering actor with a call that would profit from re-entry if the guard failed.
    function _arm(bytes16 id) private {
        bytes memory reentry = abi.encodeCall(keys.sellKeys, (id, 1, 0, DEADLINE));
        reenterer.arm(address(keys), reentry);
    }

    /// Two nonces per actor: at most ten avatars, so trades pile up on them and supplies grow.
    function createAvatar(uint256 actorSeed, uint256 nonce, uint256 amount, uint256 overpay) external {
        address creator = _actor(actorSeed);
        bytes16 id = keys.avatarIdFor(creator, uint32(nonce % 2));
        if (keys.keysSupply(id) != 0) return;
        amount = 1 + amount % 40;
        uint256 cost = keys.getPrice(0, amount) * (1 ether + keys.protocolFeePercent() + keys.creatorFeePercent())
            / 1 ether + 2;
        overpay = creator == rejecter ? 0 : overpay % 1 ether;
        vm.deal(creator, creator.balance + cost + overpay);
        vm.prank(creator);
        try keys.createAvatar{value: cost + overpay}(id, "ipfs://invariant", amount, cost, DEADLINE) {
            avatars.push(id);
            if (keys.paused()) pausedBuySucceeded = true;
        } catch {}
    }

    function buy(uint256 actorSeed, uint256 avatarSeed, uint256 amount, uint256 overpay) external {
        if (avatars.length == 0) return;
        address trader = _actor(actorSeed);
        bytes16 id = _avatar(avatarSeed);
        amount = 1 + amount % 30;
        uint256 cost = keys.getBuyPriceAfterFee(id, amount);
        overpay = trader == rejecter ? 0 : overpay % 1 ether;
        _arm(id);
        vm.deal(trader, trader.balance + cost + overpay);
        vm.prank(trader);
        try keys.buyKeys{value: cost + overpay}(id, amount, cost, DEADLINE) {
            if (keys.paused()) pausedBuySucceeded = true;
        } catch {}
    }

    /// A sell that the seller can make (it holds the keys, leaves a key, takes ETH) must go through,
    /// paused or not, whatever the fees, whoever the creator and the treasury are.
    function sell(uint256 actorSeed, uint256 avatarSeed, uint256 amount) external {
        if (avatars.length == 0) return;
        address trader = _actor(actorSeed);
        bytes16 id = _avatar(avatarSeed);
        uint256 balance = keys.keysBalance(id, trader);
        if (balance == 0) return;
        amount = 1 + amount % balance;
        if (amount >= keys.keysSupply(id)) return;
        _arm(id);
        vm.prank(trader);
        try keys.sellKeys(id, amount, 0, DEADLINE) {}
        catch {
            if (trader != rejecter) sellBlocked = true;
        }
    }

    /// Buying keys and selling them straight back never returns more than was paid.
    function buyThenSell(uint256 actorSeed, uint256 avatarSeed, uint256 amount) external {
        if (avatars.length == 0 || keys.paused()) return;
        address trader = _actor(actorSeed);
        if (trader == rejecter || trader == address(reenterer)) return;
        bytes16 id = _avatar(avatarSeed);
        amount = 1 + amount % 30;
        uint256 cost = keys.getBuyPriceAfterFee(id, amount);
        vm.deal(trader, trader.balance + cost);
        uint256 before = trader.balance;
        vm.prank(trader);
        keys.buyKeys{value: cost}(id, amount, cost, DEADLINE);
        vm.prank(trader);
        keys.sellKeys(id, amount, 0, DEADLINE);
        if (trader.balance > before) roundTripGained = true;
    }

    function withdrawCreatorFees(uint256 avatarSeed, uint256 toSeed) external {
        if (avatars.length == 0) return;
        bytes16 id = _avatar(avatarSeed);
        address creator = _creatorOf(id);
        vm.prank(creator);
        try keys.withdrawCreatorFees(id, payable(_actor(toSeed))) {} catch {}
    }

    function withdrawProtocolFees(uint256 firstSeed, uint256 secondSeed, uint256 toSeed) external {
        if (avatars.length == 0) return;
        bytes16[] memory ids = new bytes16[](2);
        (ids[0], ids[1]) = (_avatar(firstSeed), _avatar(secondSeed));
        vm.prank(keys.treasury());
        try keys.withdrawProtocolFees(ids, payable(_actor(toSeed))) {} catch {}
    }

    /// Fee changes, up to 10 % so that rejected ones (above the 5 % cap) happen too.
    function setFees(uint256 protocolFee, uint256 creatorFee) external {
        vm.startPrank(keys.owner());
        try keys.setProtocolFeePercent(protocolFee % 0.1 ether) {} catch {}
        try keys.setCreatorFeePercent(creatorFee % 0.1 ether) {} catch {}
        vm.stopPrank();
    }

    function togglePause() external {
        vm.startPrank(keys.owner());
        if (keys.paused()) keys.unpause();
        else keys.pause();
        vm.stopPrank();
    }

    function setTreasury(uint256 actorSeed) external {
        vm.prank(keys.owner());
        keys.setTreasury(_actor(actorSeed));
    }

    /// Two-step ownership transfer to an actor; the accept happens in a later call (or never).
    function transferOwnership(uint256 actorSeed) external {
        ownerCandidate = _actor(actorSeed);
        vm.prank(keys.owner());
        keys.transferOwnership(ownerCandidate);
    }

    function acceptOwnership() external {
        if (ownerCandidate == address(0)) return;
        vm.prank(ownerCandidate);
        keys.acceptOwnership();
        ownerCandidate = address(0);
    }

    function _creatorOf(bytes16 id) private view returns (address) {
        for (uint256 i; i < actors.length; ++i) {
            if (keys.isCreator(id, actors[i])) return actors[i];
        }
        revert("no creator among the actors");
    }
}

contract TwinKeysInvariantTest is Test {
    TwinKeys private keys;
    TwinKeysHandler private handler;
    Reenterer private reenterer;

    function setUp() public {
        address[] memory actors = new address[](5);
        actors[0] = address(0xA11CE);
        actors[1] = address(0xB0B);
        actors[2] = address(0xCA401);
        actors[3] = address(new Rejecter());
        reenterer = new Reenterer();
        actors[4] = address(reenterer);
        handler = new TwinKeysHandler(keys = new TwinKeys(16_000, 0.05 ether, 0.05 ether, actors[0]), actors, actors[3],
            reenterer);
        keys.transferOwnership(address(handler));
        vm.prank(address(handler));
        keys.acceptOwnership();

        bytes4[] memory selectors = new bytes4[](11);
        selectors[0] = handler.createAvatar.selector;
        selectors[1] = handler.buy.selector;
        selectors[2] = handler.sell.selector;
        selectors[3] = handler.buyThenSell.selector;
        selectors[4] = handler.withdrawCreatorFees.selector;
        selectors[5] = handler.withdrawProtocolFees.selector;
        selectors[6] = handler.setFees.selector;
        selectors[7] = handler.togglePause.selector;
        selectors[8] = handler.setTreasury.selector;
        selectors[9] = handler.transferOwnership.selector;
        selectors[10] = handler.acceptOwnership.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
        targetContract(address(handler));
    }

    /// I2: the ETH held is the curve's value at every supply plus every unclaimed fee, to the wei.
    function invariant_balance_is_curve_value_plus_unclaimed_fees() public view {
        uint256 expected;
        for (uint256 i; i < handler.avatarCount(); ++i) {
            bytes16 id = handler.avatars(i);
            expected += keys.getPrice(0, keys.keysSupply(id)) + keys.creatorFees(id) + keys.protocolFees(id);
        }
        vm.assertEq(address(keys).balance, expected, "balance != sum of curve values and fees");
    }

    /// I1 and I5: supply is the sum of the balances and never drops below one key.
    function invariant_supply_is_the_sum_of_balances() public view {
        for (uint256 i; i < handler.avatarCount(); ++i) {
            bytes16 id = handler.avatars(i);
            uint256 held;
            for (uint256 j; j < handler.actorCount(); ++j) {
                held += keys.keysBalance(id, handler.actors(j));
            }
            vm.assertEq(keys.keysSupply(id), held, "supply != sum of balances");
            vm.assertGe(keys.keysSupply(id), 1, "supply below one key");
        }
    }

    /// I4: each fee stays within the 5 % cap, whatever the owner tried.
    function invariant_fees_within_caps() public view {
        vm.assertLe(keys.protocolFeePercent(), keys.MAX_FEE_PERCENT(), "protocol fee above cap");
        vm.assertLe(keys.creatorFeePercent(), keys.MAX_FEE_PERCENT(), "creator fee above cap");
    }

    /// Sells are never blocked (pause, fees, rejecting creator or treasury); buys are while paused.
    function invariant_sells_never_blocked_and_pause_holds() public view {
        vm.assertFalse(handler.sellBlocked());
        vm.assertFalse(handler.pausedBuySucceeded());
    }

    /// I3: a buy-then-sell round trip never gains.
    function invariant_round_trip_never_gains() public view {
        vm.assertFalse(handler.roundTripGained());
    }

    /// I7: no callback re-entered (every attempt met the guard).
    function invariant_no_reentry() public view {
        vm.assertEq(reenterer.reentriesSucceeded(), 0);
    }

    /// Ownership and the treasury stay with accounts the campaign handed them to.
    function invariant_roles_are_known() public view {
        vm.assertTrue(keys.treasury() != address(0), "treasury is zero");
        address owner = keys.owner();
        bool known = owner == address(handler);
        for (uint256 j; j < handler.actorCount(); ++j) {
            known = known || owner == handler.actors(j);
        }
        vm.assertTrue(known, "owner is not an actor");
    }
}
