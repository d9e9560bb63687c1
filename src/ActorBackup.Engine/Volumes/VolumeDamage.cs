namespace ActorBackup.Engine.Volumes;

/// <summary>One problem a verify pass found, with the byte offset where it is.</summary>
public sealed record VolumeDamage(string Volume, long Offset, string Reason)
{
    public override string ToString() => $"{Volume} @ {Offset}: {Reason}";
}
