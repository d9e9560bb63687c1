namespace ActorBackup.Engine.Library;

/// <summary>Append → Full → Recycle → Append; ReadOnly: closed for writing but not full; Error: out of service.</summary>
public enum VolumeState { Append, Full, ReadOnly, Recycle, Error }
