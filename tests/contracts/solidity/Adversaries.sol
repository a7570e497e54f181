// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

// Test-only contracts that attack TwinKeys. Compiled by tests/contracts/conftest.py, never deployed.

interface ITwinKeys {
    function createAvatar(bytes16 id, string calldata metadataURI, uint256 amount, uint256 maxTotalCost, uint256 deadline)
        external
        payable;
    function buyKeys(bytes16 id, uint256 amount, uint256 maxTotalCost, uint256 deadline) external payable;
    function sellKeys(bytes16 id, uint256 amount, uint256 minProceeds, uint256 deadline) external;
    function withdrawCreatorFees(bytes16 id, address payable to) external;
}

/// A creator that rejects every ETH transfer: it must not be able to block trading of its avatar.
contract RejectingCreator {
    ITwinKeys public immutable keys;

    constructor(ITwinKeys keys_) {
        keys = keys_;
    }

    function launch(bytes16 id, uint256 amount) external payable {
        keys.createAvatar{value: msg.value}(id, "ipfs://rejecting-creator", amount, msg.value, type(uint256).max);
    }

    function withdrawTo(bytes16 id, address payable to) external {
        keys.withdrawCreatorFees(id, to);
    }
}

/// A trader whose ETH callback (buy refund, sell proceeds, fee withdrawal) tries to re-enter TwinKeys
/// and records how the attempt ended.
contract ReentrantTrader {
    enum Attack {
        None,
        Buy,
        Sell,
        WithdrawCreatorFees,
        Create
    }

    ITwinKeys public immutable keys;
    Attack public attack;
    bytes16 public target;
    uint256 public reentryAttempts;
    bytes public lastReentryError;

    constructor(ITwinKeys keys_) payable {
        keys = keys_;
    }

    function setAttack(Attack attack_, bytes16 target_) external {
        attack = attack_;
        target = target_;
    }

    function launch(bytes16 id, uint256 amount, uint256 maxTotalCost) external payable {
        keys.createAvatar{value: msg.value}(id, "ipfs://reentrant", amount, maxTotalCost, type(uint256).max);
    }

    function buy(bytes16 id, uint256 amount, uint256 maxTotalCost) external payable {
        keys.buyKeys{value: msg.value}(id, amount, maxTotalCost, type(uint256).max);
    }

    function sell(bytes16 id, uint256 amount) external {
        keys.sellKeys(id, amount, 0, type(uint256).max);
    }

    function withdraw(bytes16 id) external {
        keys.withdrawCreatorFees(id, payable(address(this)));
    }

    receive() external payable {
        if (attack == Attack.None) return;
        reentryAttempts += 1;
        try this.reenter() {}
        catch (bytes memory reason) {
            lastReentryError = reason;
        }
    }

    function reenter() external {
        require(msg.sender == address(this));
        uint256 budget = address(this).balance;
        if (attack == Attack.Buy) keys.buyKeys{value: budget}(target, 1, budget, type(uint256).max);
        else if (attack == Attack.Sell) keys.sellKeys(target, 1, 0, type(uint256).max);
        else if (attack == Attack.WithdrawCreatorFees) keys.withdrawCreatorFees(target, payable(address(this)));
        else keys.createAvatar{value: budget}(target, "ipfs://reentered", 1, budget, type(uint256).max);
    }
}
