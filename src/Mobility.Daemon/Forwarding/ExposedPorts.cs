using System.Collections.Immutable;
using Microsoft.Extensions.Options;

namespace Mobility.Daemon.Forwarding;

/// <summary>The local ports the transport listener forwards to (on 127.0.0.1). Nothing unless exposed.</summary>
public sealed class ExposedPorts
{
    private readonly Lock _gate = new();
    private ImmutableSortedSet<int> _ports;

    public ExposedPorts(IOptions<MobilitydOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _ports = [.. options.Value.Forwarding.Exposed];
    }

    public ImmutableSortedSet<int> Current
    {
        get
        {
            lock (_gate)
            {
                return _ports;
            }
        }
    }

    public bool Contains(int port) => Current.Contains(port);

    public ImmutableSortedSet<int> Expose(int port)
    {
        Check(port);
        lock (_gate)
        {
            return _ports = _ports.Add(port);
        }
    }

    public ImmutableSortedSet<int> Unexpose(int port)
    {
        Check(port);
        lock (_gate)
        {
            return _ports = _ports.Remove(port);
        }
    }

    private static void Check(int port)
    {
        if (port is < 1 or > ushort.MaxValue)
        {
            throw new ArgumentException($"{port} is not a port (1 to 65535).", nameof(port));
        }
    }
}
