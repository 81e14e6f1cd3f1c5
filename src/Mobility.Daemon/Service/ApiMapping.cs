using System.Collections.Immutable;
using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Mobility.Daemon.Challenges;
using Mobility.Daemon.Forwarding;
using Mobility.Protocol.Records;
using Mobility.Daemon.Api;
using Mobility.Transport;
using Proto = Mobility.Daemon.Api;

namespace Mobility.Daemon.Service;

/// <summary>Conversions from the API's types to the generated messages, shared by the gRPC service and the state files.</summary>
public static class ApiMapping
{
    public static Proto.TransparentStatus ToProto(Transparent.TransparentStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        return new Proto.TransparentStatus
        {
            Enabled = status.Enabled,
            Stub = status.Stub ?? "",
            Resolver = status.Resolver,
            Mappings = (uint)status.Mappings,
            Ipv4Pool = status.Ipv4Pool,
            Ipv6Prefix = status.Ipv6Prefix,
            Rules = status.Rules ?? "",
            Opportunistic = status.Opportunistic,
            OpportunisticMobile = (ulong)status.OpportunisticMobile,
            OpportunisticPlain = (ulong)status.OpportunisticPlain,
            OpportunisticOverBudget = (ulong)status.OpportunisticOverBudget,
        };
    }

    public static Proto.Status ToProto(DaemonStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        var reply = new Proto.Status
        {
            Guid = status.Guid.ToString(),
            AddressesFixed = status.AddressesFixed,
            GnsReachable = status.GnsReachable,
            RecordVersion = status.RecordVersion,
            ObservedAddress = status.Observed?.ToString() ?? "",
            GnsError = status.GnsError ?? "",
            PeersVerified = (uint)status.PeersVerified,
            TransportPort = (uint)status.TransportPort,
            StartedAt = Timestamp.FromDateTimeOffset(status.StartedAt),
        };
        if (status.PublishedAt is { } published)
        {
            reply.PublishedAt = Timestamp.FromDateTimeOffset(published);
        }

        reply.Addresses.AddRange(status.Addresses.Select(a => a.ToString()));
        reply.Control.AddRange(status.Control.Select(c => c.ToString()));
        reply.Connections.AddRange(status.Connections.Select(ToProto));
        reply.ConnectionsTotal = (uint)status.ConnectionsTotal;
        reply.Nat = ToProto(status.Nat, status.PortMapping);
        return reply;
    }

    /// <summary>The last NAT check, per family.</summary>
    public static Proto.NatStatus ToProto(Nat.NatState state, PortMapping.PortMappingState? portMapping = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        var reply = new Proto.NatStatus { Error = state.Error ?? "" };
        if (portMapping is not null)
        {
            reply.PortMapping = ToProto(portMapping);
        }

        if (state.CheckedAt is { } at)
        {
            reply.CheckedAt = Timestamp.FromDateTimeOffset(at);
        }

        reply.Families.AddRange(state.Families.Select(f => new Proto.NatFamilyStatus
        {
            Family = f.FamilyName,
            Reflexive = f.Reflexive?.ToString() ?? "",
            Local = f.Local?.ToString() ?? "",
            Nat = f.BehindNat switch { true => "yes", false => "no", null => "unknown" },
            Mapping = Nat.NatClassifier.Name(f.Mapping),
            Filtering = Nat.NatClassifier.Name(f.Filtering),
            CheckedAt = Timestamp.FromDateTimeOffset(f.CheckedAt),
            Server = f.Server.ToString(),
            Detail = f.Detail,
        }));
        return reply;
    }

    /// <summary>The mappings held at the home gateway.</summary>
    public static Proto.PortMappingStatus ToProto(PortMapping.PortMappingState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var reply = new Proto.PortMappingStatus { Gateway = state.Gateway?.ToString() ?? "", Error = state.Error ?? "" };
        if (state.CheckedAt is { } at)
        {
            reply.CheckedAt = Timestamp.FromDateTimeOffset(at);
        }

        reply.Mappings.AddRange(state.Mappings.Select(m => new Proto.MappedPort
        {
            Protocol = m.ProtocolName,
            Transport = m.TransportName,
            InternalPort = m.InternalPort,
            External = m.External.ToString(),
            LifetimeSeconds = (uint)m.Lifetime.TotalSeconds,
            RenewAt = Timestamp.FromDateTimeOffset(m.RenewAt),
            ExpiresAt = Timestamp.FromDateTimeOffset(m.ExpiresAt),
        }));
        return reply;
    }

    /// <summary>A mobile connection with the timeline of its last moves.</summary>
    public static Proto.MobileConnectionStatus ToProto(MobileConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var stats = connection.Statistics;
        var reply = new Proto.MobileConnectionStatus
        {
            Peer = connection.RemoteGuid.ToString(),
            Token = connection.Token.ToString("x32", CultureInfo.InvariantCulture),
            Client = connection.IsClient,
            State = connection.State.ToString(),
            Local = connection.LocalEndPoint?.ToString() ?? "",
            Remote = connection.RemoteEndPoint?.ToString() ?? "",
            Moves = (uint)stats.Moves,
            LastStallMs = stats.LastStall.TotalMilliseconds,
            RttMs = stats.LastRtt?.TotalMilliseconds ?? 0,
            Path = connection.PathKind ?? "",
            StandbyRelay = connection.StandbyRelay ?? "",
            DirectUpgrades = (uint)stats.DirectUpgrades,
        };
        foreach (var move in connection.Moves)
        {
            var timeline = new Proto.MoveTimeline { StartedAt = Timestamp.FromDateTimeOffset(move.StartedAt), EventsDropped = (uint)move.EventsDropped };
            timeline.Events.AddRange(move.Events.Select(e => new Proto.MoveStep { Kind = e.Kind.ToString(), AtMs = e.At.TotalMilliseconds, Detail = e.Detail ?? "" }));
            reply.Timeline.Add(timeline);
        }

        return reply;
    }

    public static Proto.Addresses ToProto(AddressesView view)
    {
        ArgumentNullException.ThrowIfNull(view);
        var reply = new Proto.Addresses { Fixed = view.Fixed, RecordVersion = view.RecordVersion };
        reply.Addresses_.AddRange(view.Addresses.Select(a => a.ToString()));
        return reply;
    }

    public static Proto.ExposedPorts ToProto(ExposedView view)
    {
        ArgumentNullException.ThrowIfNull(view);
        var reply = new Proto.ExposedPorts { Transport = view.Transport.ToString() };
        reply.Ports.AddRange(view.Ports.Select(p => (uint)p));
        foreach (var entry in view.Entries)
        {
            var item = new Proto.ExposedPortEntry { Port = (uint)entry.Port, Source = Inbound.InboundSources.ToName(entry.Source) };
            item.Allow.AddRange(entry.Allowed.Select(g => g.ToString()));
            reply.Exposed.Add(item);
        }

        foreach (var entry in view.Udp)
        {
            var item = new Proto.ExposedPortEntry { Port = (uint)entry.Port, Source = Inbound.InboundSources.ToName(entry.Source) };
            item.Allow.AddRange(entry.Allowed.Select(g => g.ToString()));
            reply.Udp.Add(item);
        }

        return reply;
    }

    public static Proto.UdpForwardList ToProto(ImmutableArray<UdpForwardView> forwards)
    {
        var reply = new Proto.UdpForwardList();
        reply.Forwards.AddRange(forwards.Select(ToProto));
        return reply;
    }

    public static Proto.UdpForwardEntry ToProto(UdpForwardView forward)
    {
        ArgumentNullException.ThrowIfNull(forward);
        return new Proto.UdpForwardEntry
        {
            Local = forward.Local.ToString(),
            Peer = forward.Peer.ToString(),
            Port = (uint)forward.Port,
            Sessions = (uint)forward.Sessions,
        };
    }

    public static Proto.GetIpReply ToProto(GnsRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var reply = new Proto.GetIpReply
        {
            Guid = record.Guid.ToString(),
            Name = record.Name ?? "",
            Version = record.Version,
            TtlSeconds = record.TtlSeconds,
        };
        reply.Addresses.AddRange(record.Locators.Select(l => l.Address.ToString()).Distinct());
        reply.Locators.AddRange(record.Locators.Select(l => new Proto.Locator
        {
            Address = l.Address.ToString(),
            Port = l.Port,
            Kind = l.Kind.ToString().ToLowerInvariant(),
        }));
        return reply;
    }

    public static Proto.GetGuidFromIpReply ToProto(GuidsAtAddress result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var reply = new Proto.GetGuidFromIpReply { Address = result.Address.ToString(), Truncated = result.Truncated };
        reply.Guids.AddRange(result.Verified.Select(g => g.ToString()));
        reply.Refused.AddRange(result.Refused.Select(r => new Proto.RefusedClaim { Guid = r.Guid.ToString(), Reason = r.Reason }));
        return reply;
    }

    public static Proto.ChallengeReply ToProto(ChallengeVerdict verdict)
    {
        ArgumentNullException.ThrowIfNull(verdict);
        return new Proto.ChallengeReply
        {
            Verified = verdict.Verified,
            Reason = verdict.Reason,
            Detail = verdict.Detail,
            Address = verdict.Target.Address.ToString(),
            Port = (uint)verdict.Target.Port,
            Guid = verdict.Guid.ToString(),
            RttMs = verdict.RoundTrip.TotalMilliseconds,
            Cached = verdict.Cached,
            CheckedAt = Timestamp.FromDateTimeOffset(verdict.CheckedAt),
        };
    }
}
