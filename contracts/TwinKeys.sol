// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title TwinKeys
/// @notice Keys of AI avatars ("twins") priced on a quadratic bonding curve. Key number `i`
/// (0-based) costs `i² · 1e18 / curveDivisor` wei; every trade adds a protocol fee and a creator
/// fee (parts of 1e18 of the curve price, each capped at 5 %). Fees accrue to claimable balances
/// that their owners withdraw; a trade sends ETH only to its own trader (sell proceeds, buy refund).
/// @dev Invariants (see contracts/README.md and tests/contracts/test_invariants.py):
///  - keysSupply(id) == Σ keysBalance(id, ·); supply never drops below 1 once an avatar exists;
///  - address(this).balance == Σ cumulativePrice(keysSupply(id)) + Σ creator fees + protocol fees.
contract TwinKeys is Ownable2Step, ReentrancyGuardTransient {
    /// @notice Upper bound of each fee, in parts of 1e18 (5 %).
    uint256 public constant MAX_FEE_PERCENT = 0.05 ether;

    /// @notice Denominator of the curve: key `i` costs `i² · 1 ether / curveDivisor`.
    uint256 public immutable curveDivisor;

    /// @dev Everything a trade writes about one avatar, in one slot: its supply and the fees it has
    /// earned for its creator and for the protocol. Keeping the protocol's fees per avatar rather
    /// than in one global counter saves every trade a second storage write (2,900 gas); the treasury
    /// collects them with withdrawProtocolFees(ids). 2^112 wei is 5·10^15 ETH, beyond any balance.
    struct Market {
        uint32 supply;
        uint112 creatorFees;
        uint112 protocolFees;
    }

    /// @dev What every trade reads and no trade writes, in one slot. The pause flag lives here rather
    /// than in OpenZeppelin's Pausable, whose flag shares a slot with `_pendingOwner` and would cost
    /// every buy another cold read (2,100 gas); the interface (`paused()`, `Paused`, `Unpaused`,
    /// `EnforcedPause`, `ExpectedPause`) is Pausable's.
    struct Config {
        uint64 protocolFeePercent;
        uint64 creatorFeePercent;
        bool paused;
    }

    Config private _config;

    /// @notice The address allowed to withdraw the protocol's fees.
    address public treasury;

    mapping(bytes16 id => Market) private _markets;

    /// @notice Keys of avatar `id` held by `holder`.
    mapping(bytes16 id => mapping(address holder => uint256 keys)) public keysBalance;

    /// @notice An avatar was created; its first buy follows as a `Trade` in the same transaction.
    event AvatarCreated(bytes16 indexed id, address indexed creator, string metadataURI);
    /// @notice A buy or a sell, with everything an indexer needs (friend.tech/Twin.fun field order).
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
    /// @notice The creator of `id` withdrew `amount` wei of creator fees to `to`.
    event CreatorFeesWithdrawn(bytes16 indexed id, address indexed creator, address to, uint256 amount);
    /// @notice The treasury withdrew `amount` wei of protocol fees earned by avatar `id` to `to`.
    event ProtocolFeesWithdrawn(bytes16 indexed id, address indexed treasury, address to, uint256 amount);
    /// @notice The protocol fee changed (parts of 1e18).
    event ProtocolFeePercentUpdated(uint256 previousPercent, uint256 newPercent);
    /// @notice The creator fee changed (parts of 1e18).
    event CreatorFeePercentUpdated(uint256 previousPercent, uint256 newPercent);
    /// @notice The treasury changed; the protocol's unclaimed fees now belong to the new treasury.
    event TreasuryUpdated(address indexed previousTreasury, address indexed newTreasury);
    /// @notice The owner `account` paused creation and buys.
    event Paused(address account);
    /// @notice The owner `account` resumed creation and buys.
    event Unpaused(address account);

    /// @notice The avatar id was not issued for the caller: it is not `avatarIdFor(msg.sender, nonce)`.
    error InvalidAvatarId();
    /// @notice createAvatar of an avatar that already exists.
    error AvatarExists(bytes16 id);
    /// @notice A buy, sell or sell quote of an avatar that was never created.
    error AvatarNotFound(bytes16 id);
    /// @notice A trade of zero keys.
    error ZeroAmount();
    /// @notice The buy would take the supply above 2^32 - 1 keys (getPrice: the supply priced is 2^64 or more).
    error SupplyOverflow(uint256 supply);
    /// @notice The transaction executed after its `deadline` (a block timestamp).
    error DeadlineExpired(uint256 deadline);
    /// @notice The buy costs more (curve price plus fees) than the caller's `maxTotalCost`.
    error TotalCostAboveMax(uint256 totalCost, uint256 maxTotalCost);
    /// @notice The ETH sent is less than the buy's total cost.
    error InsufficientPayment(uint256 totalCost, uint256 paid);
    /// @notice The sell pays less (curve price minus fees) than the caller's `minProceeds`.
    error ProceedsBelowMin(uint256 proceeds, uint256 minProceeds);
    /// @notice A sell must leave at least one key (key 0, priced 0) in existence.
    error CannotSellLastKey();
    /// @notice The caller holds fewer keys than it tries to sell.
    error InsufficientKeys(uint256 balance, uint256 amount);
    /// @notice withdrawCreatorFees by an account that is not the avatar's creator.
    error NotCreator(bytes16 id);
    /// @notice withdrawProtocolFees by an account that is not the treasury.
    error NotTreasury();
    /// @notice A withdrawal that would send 0 wei.
    error NothingToWithdraw();
    /// @notice A fee above MAX_FEE_PERCENT (5 %).
    error FeeTooHigh(uint256 feePercent, uint256 maxFeePercent);
    /// @notice A treasury or withdrawal receiver of address zero.
    error ZeroAddress();
    /// @notice A curve divisor of zero at construction.
    error ZeroDivisor();
    /// @notice The receiver of a refund, proceeds or withdrawal rejected the ETH.
    error EthTransferFailed(address to, uint256 amount);
    /// @notice Disabled: an ownerless market could never be unpaused or change fees.
    error RenounceDisabled();
    /// @notice A buy or creation while paused, or pause() while paused (OpenZeppelin Pausable's error).
    error EnforcedPause();
    /// @notice unpause() while not paused (OpenZeppelin Pausable's error).
    error ExpectedPause();

    modifier beforeDeadline(uint256 deadline) {
        if (block.timestamp > deadline) revert DeadlineExpired(deadline);
        _;
    }

    /// @param divisor Curve denominator (friend.tech uses 16,000; Twin.fun 1,600,000).
    /// @param initialProtocolFeePercent Protocol fee, parts of 1e18, at most 5 %.
    /// @param initialCreatorFeePercent Creator fee, parts of 1e18, at most 5 %.
    /// @param initialTreasury Receiver of protocol fees; the deployer becomes the owner.
    constructor(
        uint256 divisor,
        uint256 initialProtocolFeePercent,
        uint256 initialCreatorFeePercent,
        address initialTreasury
    ) Ownable(msg.sender) {
        if (divisor == 0) revert ZeroDivisor();
        curveDivisor = divisor;
        _setProtocolFeePercent(initialProtocolFeePercent);
        _setCreatorFeePercent(initialCreatorFeePercent);
        _setTreasury(initialTreasury);
    }

    // ------------------------------------------------------------------ trading

    /// @notice Create avatar `id` and buy its first `amount` keys (key 0 is free) as its creator.
    /// @dev The id commits to its creator: its low 4 bytes are a nonce and its high 12 bytes must be
    /// `bytes12(keccak256(abi.encode(msg.sender, nonce)))` (`avatarIdFor`), so nobody but the creator the
    /// API issued an id to can create it (a squatter would need a 96-bit second preimage).
    /// @param id Avatar id issued off-chain for the caller (see `avatarIdFor`).
    /// @param metadataURI Where the avatar's metadata lives (emitted, not stored).
    /// @param amount Keys to buy, at least 1.
    /// @param maxTotalCost Most the caller accepts to pay, curve price plus fees, in wei.
    /// @param deadline Last block timestamp at which the transaction may execute.
    function createAvatar(
        bytes16 id,
        string calldata metadataURI,
        uint256 amount,
        uint256 maxTotalCost,
        uint256 deadline
    ) external payable nonReentrant beforeDeadline(deadline) {
        if (!isCreator(id, msg.sender)) revert InvalidAvatarId();
        Market memory market = _markets[id];
        if (market.supply != 0) revert AvatarExists(id);
        emit AvatarCreated(id, msg.sender, metadataURI);
        _buy(id, market, amount, maxTotalCost);
    }

    /// @notice Buy `amount` keys of an existing avatar; any ETH sent above the cost is refunded.
    /// @param id The avatar.
    /// @param amount Keys to buy, at least 1.
    /// @param maxTotalCost Most the caller accepts to pay, curve price plus fees, in wei.
    /// @param deadline Last block timestamp at which the transaction may execute.
    function buyKeys(bytes16 id, uint256 amount, uint256 maxTotalCost, uint256 deadline)
        external
        payable
        nonReentrant
        beforeDeadline(deadline)
    {
        Market memory market = _markets[id];
        if (market.supply == 0) revert AvatarNotFound(id);
        _buy(id, market, amount, maxTotalCost);
    }

    /// @notice Sell `amount` keys back to the curve; the proceeds (price minus fees) go to the caller.
    /// @dev The last key of an avatar cannot be sold: it is key 0, priced 0, the curve's anchor.
    /// Selling is never paused.
    /// @param id The avatar.
    /// @param amount Keys to sell, at least 1 and fewer than the supply.
    /// @param minProceeds Least the caller accepts to receive, in wei.
    /// @param deadline Last block timestamp at which the transaction may execute.
    function sellKeys(bytes16 id, uint256 amount, uint256 minProceeds, uint256 deadline)
        external
        nonReentrant
        beforeDeadline(deadline)
    {
        if (amount == 0) revert ZeroAmount();
        Market memory market = _markets[id];
        if (market.supply == 0) revert AvatarNotFound(id);
        if (amount >= market.supply) revert CannotSellLastKey();
        uint256 balance = keysBalance[id][msg.sender];
        if (balance < amount) revert InsufficientKeys(balance, amount);

        uint256 newSupply = market.supply - amount;
        uint256 price = _cumulativePrice(market.supply) - _cumulativePrice(newSupply);
        (uint256 protocolFee, uint256 creatorFee) = _fees(_config, price);
        uint256 proceeds = price - protocolFee - creatorFee;
        if (proceeds < minProceeds) revert ProceedsBelowMin(proceeds, minProceeds);

        unchecked {
            keysBalance[id][msg.sender] = balance - amount;
        }
        _record(id, market, newSupply, protocolFee, creatorFee);
        emit Trade(msg.sender, id, false, amount, price, protocolFee, creatorFee, newSupply);
        _sendEth(msg.sender, proceeds);
    }

    // ------------------------------------------------------------------ fee withdrawals

    /// @notice Withdraw the unclaimed creator fees of avatar `id` to `to`; only its creator may.
    /// @param id The avatar.
    /// @param to Receiver of the fees (lets a creator contract that cannot take ETH direct them).
    function withdrawCreatorFees(bytes16 id, address payable to) external nonReentrant {
        if (!isCreator(id, msg.sender)) revert NotCreator(id);
        if (to == address(0)) revert ZeroAddress();
        uint256 amount = _markets[id].creatorFees;
        if (amount == 0) revert NothingToWithdraw();
        _markets[id].creatorFees = 0;
        emit CreatorFeesWithdrawn(id, msg.sender, to, amount);
        _sendEth(to, amount);
    }

    /// @notice Withdraw the unclaimed protocol fees of avatars `ids` to `to`; only the treasury may.
    /// @param ids Avatars to collect from (the indexer knows which have earned fees); repeats are harmless.
    /// @param to Receiver of the fees.
    function withdrawProtocolFees(bytes16[] calldata ids, address payable to) external nonReentrant {
        if (msg.sender != treasury) revert NotTreasury();
        if (to == address(0)) revert ZeroAddress();
        uint256 total = 0;
        for (uint256 i; i < ids.length; ++i) {
            uint256 amount = _markets[ids[i]].protocolFees;
            if (amount == 0) continue;
            _markets[ids[i]].protocolFees = 0;
            total += amount;
            emit ProtocolFeesWithdrawn(ids[i], msg.sender, to, amount);
        }
        if (total == 0) revert NothingToWithdraw();
        _sendEth(to, total);
    }

    // ------------------------------------------------------------------ owner

    /// @notice Set the protocol fee (parts of 1e18, at most MAX_FEE_PERCENT); applies to later trades.
    /// @param feePercent The new fee.
    function setProtocolFeePercent(uint256 feePercent) external onlyOwner nonReentrant {
        _setProtocolFeePercent(feePercent);
    }

    /// @notice Set the creator fee (parts of 1e18, at most MAX_FEE_PERCENT); applies to later trades.
    /// @param feePercent The new fee.
    function setCreatorFeePercent(uint256 feePercent) external onlyOwner nonReentrant {
        _setCreatorFeePercent(feePercent);
    }

    /// @notice Set the treasury; the protocol fees not yet withdrawn become the new treasury's to claim.
    /// @param newTreasury The new treasury, non-zero.
    function setTreasury(address newTreasury) external onlyOwner nonReentrant {
        _setTreasury(newTreasury);
    }

    /// @notice Stop avatar creation and buys. Sells and withdrawals keep working.
    function pause() external onlyOwner nonReentrant {
        if (_config.paused) revert EnforcedPause();
        _config.paused = true;
        emit Paused(msg.sender);
    }

    /// @notice Resume avatar creation and buys.
    function unpause() external onlyOwner nonReentrant {
        if (!_config.paused) revert ExpectedPause();
        _config.paused = false;
        emit Unpaused(msg.sender);
    }

    /// @notice Disabled: an ownerless market could never change fees or be unpaused.
    function renounceOwnership() public pure override {
        revert RenounceDisabled();
    }

    // ------------------------------------------------------------------ views

    /// @notice The avatar id that `creator` may create with `nonce`: bytes12(keccak256(abi.encode(creator,
    /// nonce))) followed by the 4-byte nonce.
    /// @param creator The account that will call createAvatar.
    /// @param nonce Any 32-bit number chosen off-chain.
    /// @return id The bound id.
    function avatarIdFor(address creator, uint32 nonce) public pure returns (bytes16 id) {
        return bytes16(bytes12(keccak256(abi.encode(creator, nonce)))) | bytes16(uint128(nonce));
    }

    /// @notice Whether `account` is the creator of avatar `id`: the one account `id` was issued to
    /// (`id == avatarIdFor(account, nonce)` for the nonce in its low 4 bytes). The creator is not
    /// stored: the id names it, which saves createAvatar a fresh storage slot (22,100 gas); the
    /// `AvatarCreated` event carries it for indexers. True also before the avatar is created.
    /// @param id The avatar.
    /// @param account The account to check.
    /// @return True when `account` created (or may create) `id`.
    function isCreator(bytes16 id, address account) public pure returns (bool) {
        return id == avatarIdFor(account, uint32(uint128(id)));
    }

    /// @notice Curve price, without fees, of `amount` keys bought at supply `supply`.
    /// @param supply Keys in existence before the trade.
    /// @param amount Keys traded.
    /// @return price Wei.
    function getPrice(uint256 supply, uint256 amount) public view returns (uint256 price) {
        uint256 keys = supply + amount;
        if (keys > type(uint64).max) revert SupplyOverflow(keys);
        return _cumulativePrice(keys) - _cumulativePrice(supply);
    }

    /// @notice Curve price, without fees, of buying `amount` keys of `id` now.
    /// @param id The avatar.
    /// @param amount Keys to buy.
    /// @return price Wei.
    function getBuyPrice(bytes16 id, uint256 amount) public view returns (uint256 price) {
        return getPrice(_markets[id].supply, amount);
    }

    /// @notice Curve price, before fees, of selling `amount` keys of `id` now.
    /// @param id The avatar.
    /// @param amount Keys to sell, at most the supply.
    /// @return price Wei.
    function getSellPrice(bytes16 id, uint256 amount) public view returns (uint256 price) {
        return getPrice(_markets[id].supply - amount, amount);
    }

    /// @notice What buying `amount` keys of `id` costs now, curve price plus both fees.
    /// @param id The avatar.
    /// @param amount Keys to buy.
    /// @return totalCost Wei.
    function getBuyPriceAfterFee(bytes16 id, uint256 amount) external view returns (uint256 totalCost) {
        uint256 price = getBuyPrice(id, amount);
        (uint256 protocolFee, uint256 creatorFee) = _fees(_config, price);
        return price + protocolFee + creatorFee;
    }

    /// @notice What selling `amount` keys of `id` pays now, curve price minus both fees.
    /// @dev Reverts where the sell would: `AvatarNotFound` for an avatar that does not exist,
    /// `CannotSellLastKey` when `amount` is the whole supply or more.
    /// @param id The avatar.
    /// @param amount Keys to sell, fewer than the supply.
    /// @return proceeds Wei.
    function getSellPriceAfterFee(bytes16 id, uint256 amount) external view returns (uint256 proceeds) {
        uint256 supply = _markets[id].supply;
        if (supply == 0) revert AvatarNotFound(id);
        if (amount >= supply) revert CannotSellLastKey();
        uint256 price = getPrice(supply - amount, amount);
        (uint256 protocolFee, uint256 creatorFee) = _fees(_config, price);
        return price - protocolFee - creatorFee;
    }

    /// @notice Keys of avatar `id` in existence (0: the avatar does not exist).
    /// @param id The avatar.
    /// @return supply Keys.
    function keysSupply(bytes16 id) external view returns (uint256 supply) {
        return _markets[id].supply;
    }

    /// @notice Creator fees earned by avatar `id` and not yet withdrawn.
    /// @param id The avatar.
    /// @return amount Wei.
    function creatorFees(bytes16 id) external view returns (uint256 amount) {
        return _markets[id].creatorFees;
    }

    /// @notice Protocol fees earned by avatar `id` and not yet withdrawn by the treasury.
    /// @param id The avatar.
    /// @return amount Wei.
    function protocolFees(bytes16 id) external view returns (uint256 amount) {
        return _markets[id].protocolFees;
    }

    /// @notice The protocol fee, parts of 1e18 of the curve price.
    /// @return feePercent Parts of 1e18.
    function protocolFeePercent() external view returns (uint256 feePercent) {
        return _config.protocolFeePercent;
    }

    /// @notice The creator fee, parts of 1e18 of the curve price.
    /// @return feePercent Parts of 1e18.
    function creatorFeePercent() external view returns (uint256 feePercent) {
        return _config.creatorFeePercent;
    }

    /// @notice Whether creation and buys are paused (sells and withdrawals never are).
    /// @return isPaused True while paused.
    function paused() external view returns (bool isPaused) {
        return _config.paused;
    }

    // ------------------------------------------------------------------ internals

    /// @dev Shared by createAvatar and buyKeys; `market` is the avatar's state before the buy.
    function _buy(bytes16 id, Market memory market, uint256 amount, uint256 maxTotalCost) private {
        Config memory config = _config;
        if (config.paused) revert EnforcedPause();
        if (amount == 0) revert ZeroAmount();
        uint256 newSupply = market.supply + amount;
        if (newSupply > type(uint32).max) revert SupplyOverflow(newSupply);
        uint256 price = _cumulativePrice(newSupply) - _cumulativePrice(market.supply);
        (uint256 protocolFee, uint256 creatorFee) = _fees(config, price);
        uint256 totalCost = price + protocolFee + creatorFee;
        if (totalCost > maxTotalCost) revert TotalCostAboveMax(totalCost, maxTotalCost);
        if (msg.value < totalCost) revert InsufficientPayment(totalCost, msg.value);

        keysBalance[id][msg.sender] += amount;
        _record(id, market, newSupply, protocolFee, creatorFee);
        emit Trade(msg.sender, id, true, amount, price, protocolFee, creatorFee, newSupply);
        unchecked {
            if (msg.value > totalCost) _sendEth(msg.sender, msg.value - totalCost);
        }
    }

    /// @dev One storage write per trade: the new supply and the fees the trade earned.
    /// SafeCast is called as a library function, not through `using for` on a mixed uint112 + uint256
    /// expression, which Slither cannot resolve (it then builds no IR for the function).
    function _record(bytes16 id, Market memory market, uint256 newSupply, uint256 protocolFee, uint256 creatorFee)
        private
    {
        uint112 newCreatorFees = SafeCast.toUint112(market.creatorFees + creatorFee);
        uint112 newProtocolFees = SafeCast.toUint112(market.protocolFees + protocolFee);
        _markets[id] = Market(uint32(newSupply), newCreatorFees, newProtocolFees);
    }

    /// @dev Σ_{i<k} i² · 1e18 / curveDivisor, floored once. Prices are differences of this
    /// function, so the ETH a market holds depends on its supply alone, to the wei.
    /// Σ_{i<k} i² = (k-1)·k·(2k-1)/6, taken as 0 at k = 0 so nothing underflows. Unchecked, because
    /// nothing can overflow for k < 2^64 ((k-1)·k·(2k-1) < 2^193, and /6 · 1e18 < 2^251): trades keep
    /// k below 2^32 (SupplyOverflow) and getPrice below 2^64. Saves every trade ~400 gas of checks.
    function _cumulativePrice(uint256 keys) private view returns (uint256) {
        if (keys == 0) return 0;
        unchecked {
            return ((keys - 1) * keys * (2 * keys - 1) / 6) * 1 ether / curveDivisor;
        }
    }

    function _fees(Config memory config, uint256 price)
        private
        pure
        returns (uint256 protocolFee, uint256 creatorFee)
    {
        protocolFee = price * config.protocolFeePercent / 1 ether;
        creatorFee = price * config.creatorFeePercent / 1 ether;
    }

    function _sendEth(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert EthTransferFailed(to, amount);
    }

    function _setProtocolFeePercent(uint256 feePercent) private {
        if (feePercent > MAX_FEE_PERCENT) revert FeeTooHigh(feePercent, MAX_FEE_PERCENT);
        emit ProtocolFeePercentUpdated(_config.protocolFeePercent, feePercent);
        _config.protocolFeePercent = uint64(feePercent);
    }

    function _setCreatorFeePercent(uint256 feePercent) private {
        if (feePercent > MAX_FEE_PERCENT) revert FeeTooHigh(feePercent, MAX_FEE_PERCENT);
        emit CreatorFeePercentUpdated(_config.creatorFeePercent, feePercent);
        _config.creatorFeePercent = uint64(feePercent);
    }

    function _setTreasury(address newTreasury) private {
        if (newTreasury == address(0)) revert ZeroAddress();
        emit TreasuryUpdated(treasury, newTreasury);
        treasury = newTreasury;
    }
}
