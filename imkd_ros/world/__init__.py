"""The synthetic multi-sensor world and its nuScenes v1.0 writer (``imkd data synth``).

* scene.py   - procedural traffic scenes: straight / curved roads and crossings, ego motion, agents
               of the 10 nuScenes classes with nuScenes-like sizes, speeds and attributes, roadside
               props; day / night / rain / fog.
* meshes.py  - per-class box-part meshes (cabins, wheels, lights, bodies, stripes) and props.
* sim.py     - ground-texture map, world snapshots of every part at a sensor timestamp.
* camera.py  - pinhole rendering with an exact per-pixel z-buffer (key frames) or painter's
               algorithm (sweeps), textured ground, sky, weather, sensor noise.
* lidar.py   - 32-beam spinning LiDAR ray casting (x, y, z, intensity, ring).
* radar.py   - ARS408-like radar clusters: RCS, Doppler + ego compensation, clutter, ghosts.
* pcd.py     - nuScenes .pcd.bin (LiDAR) and binary PCD v0.7 (radar) files.
* writer.py  - the 13 nuScenes tables with deterministic tokens, map stub, splits.json.
* synth.py   - sensor timeline (20 Hz LiDAR, 12 Hz staggered cameras, 13 Hz radars, 2 Hz samples),
               ground truth (num_lidar_pts / num_radar_pts / visibility / tracks), the CLI handler.
"""
