using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Internal;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.Transparent;

/// <summary>The addresses that name one peer.</summary>
public readonly record struct VirtualAddresses(HostGuid Guid, IPAddress Ipv4, IPAddress Ipv6);

/// <summary>Every address of the pool is held by a peer resolved within the answer TTL: no address can be given out now.</summary>
public sealed class VirtualAddressesFullException : Exception
{
    public VirtualAddressesFullException(string message) : base(message) { }

    public VirtualAddressesFullException() : base("No virtual IPv4 address is free.") { }

    public VirtualAddressesFullException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>
/// Peer GUID to virtual addresses and back. The IPv6 address is derived (<see cref="VirtualAddressPool.Ipv6Of"/>);
/// the IPv4 address is assigned from the pool (first choice <see cref="VirtualAddressPool.PreferredOffset"/>,
/// then the next free one) and kept in &lt;StateDir&gt;/<see cref="FileName"/> (one "address guid" line per peer,
/// least recently resolved first), so that it stays the same across restarts. At most
/// <see cref="TransparentOptions.MaxMappings"/> peers (and never more than the pool holds): beyond it the
/// least recently resolved peer gives its address up, unless it was resolved within the answer TTL (a cached
/// answer may still name it): then <see cref="VirtualAddressesFullException"/>.
/// </summary>
public sealed partial class VirtualAddressMap
{
    public const string FileName = "virtual-ipv4";

    private readonly Lock _lock = new();
    private readonly VirtualAddressPool _pool;
    private readonly int _capacity;
    private readonly TimeSpan _holdTime;
    private readonly TimeProvider _time;
    private readonly ILogger<VirtualAddressMap> _logger;
    private readonly string _path;
    private readonly Dictionary<HostGuid, LinkedListNode<Entry>> _byGuid = [];
    private readonly Dictionary<int, LinkedListNode<Entry>> _byOffset = [];
    private readonly Dictionary<IPAddress, HostGuid> _byIpv6 = [];

    /// <summary>Least recently resolved first.</summary>
    private readonly LinkedList<Entry> _recency = new();

    public VirtualAddressMap(IOptions<MobilitydOptions> options, TimeProvider time, ILogger<VirtualAddressMap> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var transparent = options.Value.Transparent;
        _pool = transparent.ParsedPool;
        _capacity = Math.Min(transparent.MaxMappings, _pool.Size);
        _holdTime = TimeSpan.FromSeconds(transparent.AnswerTtlSeconds);
        _time = time;
        _logger = logger;
        _path = Path.Combine(Path.GetFullPath(options.Value.StateDir), FileName);
        Load();
    }

    public VirtualAddressPool Pool => _pool;

    /// <summary>Peers holding an IPv4 address now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _byGuid.Count;
            }
        }
    }

    /// <summary>The addresses of <paramref name="guid"/>, assigning an IPv4 address when it has none; marks it recently resolved.</summary>
    public VirtualAddresses Resolve(HostGuid guid)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_byGuid.TryGetValue(guid, out var node))
            {
                node.Value.LastResolved = now;
                _recency.Remove(node);
                _recency.AddLast(node);
                return ToAddresses(node.Value);
            }

            if (_byGuid.Count >= _capacity)
            {
                Evict(now);
            }

            var offset = FreeOffset(guid);
            node = Add(new Entry(guid, offset) { LastResolved = now });
            Save();
            Log.Assigned(_logger, guid.ToString(), _pool.AddressAt(offset));
            return ToAddresses(node.Value);
        }
    }

    /// <summary>The peer a virtual address (IPv4 of the pool, IPv4-mapped, or IPv6 of fd6d:6f62::/32) names, when one holds it.</summary>
    public bool TryGetGuid(IPAddress address, out HostGuid guid)
    {
        ArgumentNullException.ThrowIfNull(address);
        lock (_lock)
        {
            if (_pool.TryOffsetOf(address, out var offset))
            {
                if (_byOffset.TryGetValue(offset, out var node))
                {
                    guid = node.Value.Guid;
                    return true;
                }
            }
            else if (VirtualAddressPool.IsVirtualIpv6(address) && _byIpv6.TryGetValue(address, out guid))
            {
                return true;
            }
        }

        guid = default;
        return false;
    }

    private VirtualAddresses ToAddresses(Entry entry) => new(entry.Guid, _pool.AddressAt(entry.Offset), VirtualAddressPool.Ipv6Of(entry.Guid));

    private LinkedListNode<Entry> Add(Entry entry)
    {
        var node = _recency.AddLast(entry);
        _byGuid[entry.Guid] = node;
        _byOffset[entry.Offset] = node;
        _byIpv6[VirtualAddressPool.Ipv6Of(entry.Guid)] = entry.Guid;
        return node;
    }

    private void Evict(DateTimeOffset now)
    {
        var oldest = _recency.First!;
        if (now - oldest.Value.LastResolved < _holdTime)
        {
            throw new VirtualAddressesFullException(
                $"All {_capacity} virtual IPv4 addresses (Transparent:MaxMappings, pool {_pool}) name peers resolved in the last {_holdTime.TotalSeconds:0} s; none can be given out now.");
        }

        _recency.Remove(oldest);
        _byGuid.Remove(oldest.Value.Guid);
        _byOffset.Remove(oldest.Value.Offset);
        _byIpv6.Remove(VirtualAddressPool.Ipv6Of(oldest.Value.Guid));
        Log.Evicted(_logger, oldest.Value.Guid.ToString(), _pool.AddressAt(oldest.Value.Offset));
    }

    /// <summary>The preferred offset of the GUID, or the next free one after it (wrapping); the map is below capacity here.</summary>
    private int FreeOffset(HostGuid guid)
    {
        var start = _pool.PreferredOffset(guid);
        for (var i = 0; i < _pool.Size; i++)
        {
            var offset = (start + i) % _pool.Size;
            if (!_byOffset.ContainsKey(offset))
            {
                return offset;
            }
        }

        throw new VirtualAddressesFullException($"The pool {_pool} has no free address.");
    }

    private void Load()
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(_path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.LoadFailed(_logger, _path, e.Message);
            return;
        }

        // Loaded as if resolved long ago: the order (least recent first) is kept, and all may give their address up.
        var skipped = 0;
        foreach (var line in lines)
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (line.StartsWith('#') || fields.Length == 0)
            {
                continue;
            }

            if (fields.Length != 2 || !IPAddress.TryParse(fields[0], out var address) || address.AddressFamily != AddressFamily.InterNetwork
                || !_pool.TryOffsetOf(address, out var offset) || !HostGuid.TryParse(fields[1], out var guid)
                || _byGuid.ContainsKey(guid) || _byOffset.ContainsKey(offset) || _byGuid.Count >= _capacity)
            {
                // Another pool, a duplicate, a smaller cap, or a damaged line: that peer gets an address again when resolved.
                skipped++;
                continue;
            }

            Add(new Entry(guid, offset) { LastResolved = DateTimeOffset.MinValue });
        }

        if (skipped > 0)
        {
            Log.LinesSkipped(_logger, _path, skipped);
        }
    }

    private void Save()
    {
        var sb = new StringBuilder("# Written by mobilityd: virtual IPv4 address and peer GUID, least recently resolved first.\n");
        foreach (var entry in _recency)
        {
            sb.Append(_pool.AddressAt(entry.Offset)).Append(' ').Append(entry.Guid).Append('\n');
        }

        try
        {
            AtomicFile.Write(_path, sb.ToString());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.SaveFailed(_logger, _path, e.Message);
        }
    }

    private sealed class Entry(HostGuid guid, int offset)
    {
        public HostGuid Guid { get; } = guid;

        public int Offset { get; } = offset;

        public DateTimeOffset LastResolved { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(8400, LogLevel.Debug, "Virtual address {Address} assigned to {Guid}.")]
        public static partial void Assigned(ILogger logger, string guid, IPAddress address);

        [LoggerMessage(8401, LogLevel.Information, "Virtual address {Address} taken back from {Guid} (least recently resolved; Transparent:MaxMappings reached).")]
        public static partial void Evicted(ILogger logger, string guid, IPAddress address);

        [LoggerMessage(8402, LogLevel.Warning, "Could not read the virtual address map {Path}: {Error}; starting empty.")]
        public static partial void LoadFailed(ILogger logger, string path, string error);

        [LoggerMessage(8403, LogLevel.Warning, "Virtual address map {Path}: {Count} lines skipped (another pool, duplicates, over the cap, or damaged).")]
        public static partial void LinesSkipped(ILogger logger, string path, int count);

        [LoggerMessage(8404, LogLevel.Warning, "Could not write the virtual address map {Path}: {Error}.")]
        public static partial void SaveFailed(ILogger logger, string path, string error);
    }
}
