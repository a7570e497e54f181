// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title NodeRegistry
/// @notice LLM proxy nodes publish where they are, who gets paid, and the enclave key that signs
/// their attestations. A node is identified by its `teeId = keccak256(signingPublicKey)`, as in
/// OpenGradient's TEE registry, so a client holding a signed reply finds the node by its key.
/// @dev Permissionless: anyone may register a node; only the node's owner may change it. Clients
/// decide whom to trust from the code measurement and the heartbeat age.
contract NodeRegistry {
    struct Node {
        bytes32 teeId;
        address owner;
        address paymentAddress;
        bool enabled;
        uint64 registeredAt;
        uint64 lastHeartbeat;
        bytes32 codeMeasurement;
        string endpoint;
        bytes signingPublicKey;
    }

    mapping(bytes32 teeId => Node) private _nodes;
    bytes32[] private _nodeIds;

    /// @notice A node was registered (enabled, heartbeat at registration time).
    event NodeRegistered(
        bytes32 indexed teeId,
        address indexed owner,
        address paymentAddress,
        string endpoint,
        bytes signingPublicKey,
        bytes32 codeMeasurement
    );
    /// @notice A node's payment address, endpoint or code measurement changed.
    event NodeUpdated(bytes32 indexed teeId, address paymentAddress, string endpoint, bytes32 codeMeasurement);
    /// @notice A node was enabled or disabled by its owner.
    event NodeEnabledSet(bytes32 indexed teeId, bool enabled);
    /// @notice A node reported it is alive.
    event NodeHeartbeat(bytes32 indexed teeId, uint256 timestamp);
    /// @notice A node's record moved to a new owner.
    event NodeOwnershipTransferred(bytes32 indexed teeId, address indexed previousOwner, address indexed newOwner);

    error NodeExists(bytes32 teeId);
    error NodeNotFound(bytes32 teeId);
    error NotNodeOwner(bytes32 teeId, address caller);
    error EmptyPublicKey();
    error EmptyEndpoint();
    error ZeroAddress();

    modifier onlyNodeOwner(bytes32 teeId) {
        address owner = _nodes[teeId].owner;
        if (owner == address(0)) revert NodeNotFound(teeId);
        if (owner != msg.sender) revert NotNodeOwner(teeId, msg.sender);
        _;
    }

    /// @notice Register a node owned by the caller; it starts enabled.
    /// @param paymentAddress Receiver of the node's x402 payments.
    /// @param endpoint The node's base URL.
    /// @param signingPublicKey The enclave's signing key, an RSA SubjectPublicKeyInfo in DER.
    /// @param codeMeasurement Hash of the code the enclave runs.
    /// @return teeId keccak256(signingPublicKey), the node's id.
    function registerNode(
        address paymentAddress,
        string calldata endpoint,
        bytes calldata signingPublicKey,
        bytes32 codeMeasurement
    ) external returns (bytes32 teeId) {
        if (signingPublicKey.length == 0) revert EmptyPublicKey();
        _checkRecord(paymentAddress, endpoint);
        teeId = keccak256(signingPublicKey);
        if (_nodes[teeId].owner != address(0)) revert NodeExists(teeId);
        _nodes[teeId] = Node({
            teeId: teeId,
            owner: msg.sender,
            paymentAddress: paymentAddress,
            enabled: true,
            registeredAt: uint64(block.timestamp),
            lastHeartbeat: uint64(block.timestamp),
            codeMeasurement: codeMeasurement,
            endpoint: endpoint,
            signingPublicKey: signingPublicKey
        });
        _nodeIds.push(teeId);
        emit NodeRegistered(teeId, msg.sender, paymentAddress, endpoint, signingPublicKey, codeMeasurement);
    }

    /// @notice Change a node's payment address, endpoint and code measurement; owner only.
    /// @dev The signing key is the node's identity: a new key is a new node.
    /// @param teeId The node.
    /// @param paymentAddress Receiver of the node's x402 payments.
    /// @param endpoint The node's base URL.
    /// @param codeMeasurement Hash of the code the enclave runs.
    function updateNode(bytes32 teeId, address paymentAddress, string calldata endpoint, bytes32 codeMeasurement)
        external
        onlyNodeOwner(teeId)
    {
        _checkRecord(paymentAddress, endpoint);
        Node storage node = _nodes[teeId];
        node.paymentAddress = paymentAddress;
        node.endpoint = endpoint;
        node.codeMeasurement = codeMeasurement;
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

    /// @notice Hand the node's record to `newOwner`; owner only.
    /// @param teeId The node.
    /// @param newOwner The new owner, non-zero.
    function transferNodeOwnership(bytes32 teeId, address newOwner) external onlyNodeOwner(teeId) {
        if (newOwner == address(0)) revert ZeroAddress();
        _nodes[teeId].owner = newOwner;
        emit NodeOwnershipTransferred(teeId, msg.sender, newOwner);
    }

    /// @notice The record of node `teeId`.
    /// @param teeId The node.
    /// @return node The record.
    function getNode(bytes32 teeId) external view returns (Node memory node) {
        node = _nodes[teeId];
        if (node.owner == address(0)) revert NodeNotFound(teeId);
    }

    /// @notice How many nodes were ever registered.
    /// @return count Nodes.
    function nodeCount() external view returns (uint256 count) {
        return _nodeIds.length;
    }

    /// @notice The id of the `index`-th registered node (registration order).
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

    function _checkRecord(address paymentAddress, string calldata endpoint) private pure {
        if (paymentAddress == address(0)) revert ZeroAddress();
        if (bytes(endpoint).length == 0) revert EmptyEndpoint();
    }
}
