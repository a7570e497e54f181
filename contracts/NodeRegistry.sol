// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title NodeRegistry
/// @notice LLM proxy nodes publish where they are, who gets paid, and the enclave key that signs
/// their attestations. A node is identified by its `teeId = keccak256(signingPublicKey)`, as in
/// OpenGradient's TEE registry, so a client holding a signed reply finds the node by its key.
/// @dev Registration is open and self-declared; admission is not. The registry's owner approves
/// (and revokes) nodes, and removes unapproved records, e.g. one that squats another operator's
/// key. Each record carries `keyProof`, an RSA-PSS signature by the node key over
/// `registrationDigest(owner, endpoint)`, which clients verify off-chain (RSA is impractical to
/// verify on-chain): a record whose proof does not verify is never trusted, approved or not.
contract NodeRegistry is Ownable2Step {
    /// @notice Type hash of what a node key signs to prove its record's owner and endpoint.
    bytes32 public constant REGISTRATION_TYPEHASH =
        keccak256("TwinNodeRegistration(uint256 chainId,address registry,address operator,string endpoint)");

    struct Node {
        bytes32 teeId;
        address owner;
        address paymentAddress;
        bool enabled;
        bool approved;
        uint64 registeredAt;
        uint64 lastHeartbeat;
        bytes32 codeMeasurement;
        string endpoint;
        bytes signingPublicKey;
        bytes keyProof;
    }

    mapping(bytes32 teeId => Node) private _nodes;
    bytes32[] private _nodeIds;
    mapping(bytes32 teeId => uint256 position) private _positionPlusOne;

    /// @notice A node was registered (enabled, unapproved, heartbeat at registration time).
    event NodeRegistered(
        bytes32 indexed teeId,
        address indexed owner,
        address paymentAddress,
        string endpoint,
        bytes signingPublicKey,
        bytes32 codeMeasurement
    );
    /// @notice A node's payment address, endpoint, code measurement or key proof changed.
    event NodeUpdated(bytes32 indexed teeId, address paymentAddress, string endpoint, bytes32 codeMeasurement);
    /// @notice A node was enabled or disabled by its owner.
    event NodeEnabledSet(bytes32 indexed teeId, bool enabled);
    /// @notice A node reported it is alive.
    event NodeHeartbeat(bytes32 indexed teeId, uint256 timestamp);
    /// @notice A node's record moved to a new owner (its approval is cleared).
    event NodeOwnershipTransferred(bytes32 indexed teeId, address indexed previousOwner, address indexed newOwner);
    /// @notice The registry's owner admitted node `teeId`: clients may route personas and payments to it.
    event NodeApproved(bytes32 indexed teeId, address indexed nodeOwner);
    /// @notice The registry's owner withdrew node `teeId`'s admission.
    event NodeRevoked(bytes32 indexed teeId, address indexed nodeOwner);
    /// @notice The registry's owner deleted the unapproved record `teeId`; its key may register again.
    event NodeRemoved(bytes32 indexed teeId, address indexed nodeOwner);

    /// @notice A record for this key exists (the registry's owner can remove it if it is a squatter's).
    error NodeExists(bytes32 teeId);
    /// @notice No record has this id.
    error NodeNotFound(bytes32 teeId);
    /// @notice Only the record's owner may do this.
    error NotNodeOwner(bytes32 teeId, address caller);
    /// @notice The signing key is empty.
    error EmptyPublicKey();
    /// @notice The endpoint is empty.
    error EmptyEndpoint();
    /// @notice The key proof is empty.
    error EmptyKeyProof();
    /// @notice An address argument is zero.
    error ZeroAddress();
    /// @notice approveNode of an approved node, or revokeNode of an unapproved one.
    error ApprovalUnchanged(bytes32 teeId, bool approved);
    /// @notice An approved record cannot be removed; revoke it first.
    error NodeIsApproved(bytes32 teeId);
    /// @notice Disabled: an ownerless registry could never admit a node again.
    error RenounceDisabled();

    /// @param initialOwner The account that admits nodes (approve, revoke, remove).
    constructor(address initialOwner) Ownable(initialOwner) {}

    modifier onlyNodeOwner(bytes32 teeId) {
        address owner = _nodes[teeId].owner;
        if (owner == address(0)) revert NodeNotFound(teeId);
        if (owner != msg.sender) revert NotNodeOwner(teeId, msg.sender);
        _;
    }

    /// @notice Register a node owned by the caller; it starts enabled and unapproved.
    /// @param paymentAddress Receiver of the node's x402 payments.
    /// @param endpoint The node's base URL.
    /// @param signingPublicKey The enclave's signing key, an RSA SubjectPublicKeyInfo in DER.
    /// @param codeMeasurement Hash of the code the enclave runs.
    /// @param keyProof RSA-PSS(SHA-256) signature by the node key over `registrationDigest(msg.sender,
    /// endpoint)`; not checked here (clients check it), but required.
    /// @return teeId keccak256(signingPublicKey), the node's id.
    function registerNode(
        address paymentAddress,
        string calldata endpoint,
        bytes calldata signingPublicKey,
        bytes32 codeMeasurement,
        bytes calldata keyProof
    ) external returns (bytes32 teeId) {
        if (signingPublicKey.length == 0) revert EmptyPublicKey();
        _checkRecord(paymentAddress, endpoint, keyProof);
        teeId = keccak256(signingPublicKey);
        if (_nodes[teeId].owner != address(0)) revert NodeExists(teeId);
        _nodes[teeId] = Node({
            teeId: teeId,
            owner: msg.sender,
            paymentAddress: paymentAddress,
            enabled: true,
            approved: false,
            registeredAt: uint64(block.timestamp),
            lastHeartbeat: uint64(block.timestamp),
            codeMeasurement: codeMeasurement,
            endpoint: endpoint,
            signingPublicKey: signingPublicKey,
            keyProof: keyProof
        });
        _nodeIds.push(teeId);
        _positionPlusOne[teeId] = _nodeIds.length;
        emit NodeRegistered(teeId, msg.sender, paymentAddress, endpoint, signingPublicKey, codeMeasurement);
    }

    /// @notice Change a node's payment address, endpoint, code measurement and key proof; owner only.
    /// @dev The signing key is the node's identity: a new key is a new node. The proof signs the
    /// endpoint, so a new endpoint needs a new proof. Approval is kept.
    /// @param teeId The node.
    /// @param paymentAddress Receiver of the node's x402 payments.
    /// @param endpoint The node's base URL.
    /// @param codeMeasurement Hash of the code the enclave runs.
    /// @param keyProof The node key's signature over `registrationDigest(msg.sender, endpoint)`.
    function updateNode(
        bytes32 teeId,
        address paymentAddress,
        string calldata endpoint,
        bytes32 codeMeasurement,
        bytes calldata keyProof
    ) external onlyNodeOwner(teeId) {
        _checkRecord(paymentAddress, endpoint, keyProof);
        Node storage node = _nodes[teeId];
        node.paymentAddress = paymentAddress;
        node.endpoint = endpoint;
        node.codeMeasurement = codeMeasurement;
        node.keyProof = keyProof;
        emit NodeUpdated(teeId, paymentAddress, endpoint, codeMeasurement);
    }

    /// @notice Enable or disable a node (clients route only to enabled nodes); owner only.
    /// @param teeId The node.
    /// @param enabled The new state.
    function setNodeEnabled(bytes32 teeId, bool enabled) external onlyNodeOwner(teeId) {
        _nodes[teeId].enabled = enabled;
        emit NodeEnabledSet(teeId, enabled);
    }

    /// @notice Record that the node is alive now; owner only.
    /// @param teeId The node.
    function heartbeat(bytes32 teeId) external onlyNodeOwner(teeId) {
        _nodes[teeId].lastHeartbeat = uint64(block.timestamp);
        emit NodeHeartbeat(teeId, block.timestamp);
    }

    /// @notice Hand the node's record to `newOwner`; owner only. The approval is cleared (the registry's
    /// owner admitted the previous operator, not the new one), and the key proof, which names the
    /// previous owner, must be renewed with `updateNode` before clients trust the node again.
    /// @param teeId The node.
    /// @param newOwner The new owner, non-zero.
    function transferNodeOwnership(bytes32 teeId, address newOwner) external onlyNodeOwner(teeId) {
        if (newOwner == address(0)) revert ZeroAddress();
        Node storage node = _nodes[teeId];
        node.owner = newOwner;
        emit NodeOwnershipTransferred(teeId, msg.sender, newOwner);
        if (node.approved) {
            node.approved = false;
            emit NodeRevoked(teeId, newOwner);
        }
    }

    // ------------------------------------------------------------------ admission (registry owner)

    /// @notice Admit node `teeId`; only the registry's owner. Clients still check its key proof.
    /// @param teeId The node.
    function approveNode(bytes32 teeId) external onlyOwner {
        _setApproved(teeId, true);
    }

    /// @notice Withdraw node `teeId`'s admission; only the registry's owner.
    /// @param teeId The node.
    function revokeNode(bytes32 teeId) external onlyOwner {
        _setApproved(teeId, false);
    }

    /// @notice Delete the unapproved record `teeId` (a squatter's, say), so that its key can register
    /// again; only the registry's owner. The last record takes its place in the enumeration.
    /// @param teeId The node.
    function removeNode(bytes32 teeId) external onlyOwner {
        Node storage node = _nodes[teeId];
        address nodeOwner = node.owner;
        if (nodeOwner == address(0)) revert NodeNotFound(teeId);
        if (node.approved) revert NodeIsApproved(teeId);
        uint256 position = _positionPlusOne[teeId] - 1;
        bytes32 last = _nodeIds[_nodeIds.length - 1];
        _nodeIds[position] = last;
        _positionPlusOne[last] = position + 1;
        _nodeIds.pop();
        delete _positionPlusOne[teeId];
        delete _nodes[teeId];
        emit NodeRemoved(teeId, nodeOwner);
    }

    /// @notice Disabled: an ownerless registry could never admit or revoke a node.
    function renounceOwnership() public pure override {
        revert RenounceDisabled();
    }

    /// @notice What a node key signs (RSA-PSS, SHA-256, MGF1-SHA-256, salt 32) to prove that it runs
    /// at `endpoint` for `operator` on this registry of this chain: keccak256(abi.encode(
    /// REGISTRATION_TYPEHASH, block.chainid, address(this), operator, keccak256(bytes(endpoint)))).
    /// @param operator The record's owner.
    /// @param endpoint The node's base URL.
    /// @return digest The 32 bytes the node key signs.
    function registrationDigest(address operator, string calldata endpoint) external view returns (bytes32 digest) {
        return keccak256(
            abi.encode(REGISTRATION_TYPEHASH, block.chainid, address(this), operator, keccak256(bytes(endpoint)))
        );
    }

    /// @notice The record of node `teeId`.
    /// @param teeId The node.
    /// @return node The record.
    function getNode(bytes32 teeId) external view returns (Node memory node) {
        node = _nodes[teeId];
        if (node.owner == address(0)) revert NodeNotFound(teeId);
    }

    /// @notice How many nodes are registered (removed records not counted).
    /// @return count Nodes.
    function nodeCount() external view returns (uint256 count) {
        return _nodeIds.length;
    }

    /// @notice The id of the `index`-th registered node (registration order, but for removals).
    /// @param index 0-based position.
    /// @return teeId The node's id.
    function nodeIdAt(uint256 index) external view returns (bytes32 teeId) {
        return _nodeIds[index];
    }

    /// @notice Up to `limit` node records starting at position `offset` (registration order).
    /// @param offset First position.
    /// @param limit Most records to return.
    /// @return nodes The records; shorter than `limit` at the end of the list.
    function listNodes(uint256 offset, uint256 limit) external view returns (Node[] memory nodes) {
        uint256 total = _nodeIds.length;
        uint256 end = offset >= total ? offset : (limit > total - offset ? total : offset + limit);
        nodes = new Node[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            nodes[i - offset] = _nodes[_nodeIds[i]];
        }
    }

    function _checkRecord(address paymentAddress, string calldata endpoint, bytes calldata keyProof) private pure {
        if (paymentAddress == address(0)) revert ZeroAddress();
        if (bytes(endpoint).length == 0) revert EmptyEndpoint();
        if (keyProof.length == 0) revert EmptyKeyProof();
    }

    function _setApproved(bytes32 teeId, bool approved) private {
        Node storage node = _nodes[teeId];
        address nodeOwner = node.owner;
        if (nodeOwner == address(0)) revert NodeNotFound(teeId);
        if (node.approved == approved) revert ApprovalUnchanged(teeId, approved);
        node.approved = approved;
        if (approved) emit NodeApproved(teeId, nodeOwner);
        else emit NodeRevoked(teeId, nodeOwner);
    }
}
